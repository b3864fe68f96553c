#!/usr/bin/env perl
# bench/report.py's paired table: per workload, the median of the rounds' ours/C ratios with
# a sign-test 95% interval, and a verdict that says "better" or "worse" only when the whole
# interval lies on one side of 1.00. Fed synthetic trials here; no server runs.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use File::Temp qw(tempdir);

plan skip_all => 'needs python3' unless `python3 --version 2>&1` =~ /^Python 3/;

my $report = "$Bin/../bench/report.py";
my $dir = tempdir(CLEANUP => 1);
my @tsv;

# One bench/loadgen output; bench/run's trials.tsv row points at it.
sub trial {
    my ($w, $side, $round, $tps, $p99) = @_;
    (my $file = "$w.$side.$round.out") =~ tr{/}{_};
    my $out = "$dir/$file";
    open my $fh, '>', $out or die "$out: $!";
    my $ops = $tps * 3;
    print $fh "Run time: 3.00s Ops: $ops TPS: $tps Misses: 0 Errors: 0\n";
    printf $fh "Latency us: min=10.0 p50=50.0 p99=%.1f p99.9=%.1f max=9000.0 avg=60.0\n",
        $p99, $p99 * 2;
    close $fh;
    # workload side round outfile server_cpu_ticks clk_tck other_cpu_pct status peak_rss_kb
    push @tsv, join("\t", $w, $side, $round, $out, 300, 100, 1, 'ok', 12000) . "\n";
}

# ahead/t1: ours is 10% faster and its p99 10% lower in every round.
# even/t1: the rounds alternate, ours 5% ahead then 5% behind.
# behind/t1: ours is 8% slower every round.
# short/t1: 4 rounds only, too few for an interval.
for my $r (1 .. 10) {
    trial('ahead/t1', 'ours', $r, 110_000 + $r, 900);
    trial('ahead/t1', 'C', $r, 100_000 + $r, 1000);
    my $up = $r % 2 ? 1.05 : 0.95;
    trial('even/t1', 'ours', $r, int(100_000 * $up), 1000);
    trial('even/t1', 'C', $r, 100_000, 1000);
    trial('behind/t1', 'ours', $r, 92_000 + $r, 1000);
    trial('behind/t1', 'C', $r, 100_000 + $r, 1000);
    next if $r > 4;
    trial('short/t1', 'ours', $r, 100_000, 1000);
    trial('short/t1', 'C', $r, 100_000, 1000);
}
open my $fh, '>', "$dir/trials.tsv" or die $!;
print $fh @tsv;
close $fh;

my @out = `python3 $report summary $dir/trials.tsv 2>&1`;
my %row;
my $in_paired;
for (@out) {
    $in_paired = 1 if /^Paired by round/;
    next unless $in_paired && /^\|\s*(\S+\/t1)\s*\|/;
    $row{$1} = [map { s/^\s+|\s+$//gr } split /\|/, $_];
}
# cells: '', workload, rounds, ops/s ratio [ci], ops/s verdict, p99 ratio [ci], p99 verdict, ...
like($row{'ahead/t1'}[3] // '', qr/^1\.10x \[1\.10-1\.10\]$/, 'ahead: ratio and interval');
is($row{'ahead/t1'}[4], 'better', 'ahead: throughput better');
is($row{'ahead/t1'}[6], 'better', 'ahead: p99 lower reads better');
is($row{'even/t1'}[2], '10', 'even: 10 rounds paired');
like($row{'even/t1'}[3] // '', qr/\[0\.95-1\.05\]$/, 'even: interval spans both sides');
is($row{'even/t1'}[4], 'level', 'even: level');
is($row{'behind/t1'}[4], 'worse', 'behind: throughput worse');
# Both servers use the same CPU time, so fewer operations cost more per operation.
is($row{'ahead/t1'}[8], 'better', 'ahead: CPU per op lower reads better');
is($row{'behind/t1'}[8], 'worse', 'behind: CPU per op higher reads worse');
is($row{'short/t1'}[3], '1.00x', 'short: no interval under 6 rounds');
is($row{'short/t1'}[4], '-', 'short: no verdict');

done_testing();
