#!/usr/bin/env perl
# A real Prometheus (Debian's package) scrapes the metrics endpoint and answers PromQL over
# it; promtool's lint finds nothing but the counter names memcached_exporter itself uses
# without "_total" (kept so that dashboards and alerts work unchanged).

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);

plan skip_all => 'no metrics endpoint in this build'
    unless MemcachedTest::print_help() =~ /metrics_listen/;
plan skip_all => 'prometheus and promtool are not installed (apt-get install prometheus)'
    unless -x '/usr/bin/prometheus' && -x '/usr/bin/promtool';

sub http_get {
    my ($port, $path) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10) or return '';
    print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    my (undef, $body) = split(/\r\n\r\n/, $resp, 2);
    return $body // '';
}

my $dir = tempdir(CLEANUP => 1);
my $mport = free_port();
my $server = new_memcached("-o metrics_listen=127.0.0.1:$mport");
my $sock = $server->sock;
print $sock "set k 0 0 1\r\nv\r\n";
<$sock>;
mem_get_is($sock, 'k', 'v') for 1 .. 3;

# promtool's lint.
my $body = http_get($mport, '/metrics');
open(my $fh, '>', "$dir/metrics.txt") or die;
print $fh $body;
close($fh);
my $lint = `promtool check metrics < $dir/metrics.txt 2>&1`;
my @findings = grep { length } split /\n/, $lint;
my %inherited = map { ($_ => 1) } qw(memcached_uptime_seconds memcached_slab_items_evicted_time_seconds
    memcached_slab_items_moves_to_cold memcached_slab_items_moves_to_warm
    memcached_slab_items_moves_within_lru memcached_slab_mem_requested_bytes
    memcached_extstore_bytes_used);
my @other = grep { !(/^(\S+) counter metrics should have "_total" suffix$/ && $inherited{$1}) } @findings;
is_deeply(\@other, [], "promtool: nothing but the exporter's own counter names")
    or diag($lint);

# Prometheus itself.
my $pport = free_port();
open(my $cf, '>', "$dir/prometheus.yml") or die;
print $cf <<"EOF";
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: memcached
    static_configs:
      - targets: ['127.0.0.1:$mport']
EOF
close($cf);
my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    open(STDOUT, '>', "$dir/prometheus.log");
    open(STDERR, '>&', \*STDOUT);
    {
        no warnings 'exec';
        exec('/usr/bin/prometheus', "--config.file=$dir/prometheus.yml",
            "--storage.tsdb.path=$dir/data", "--web.listen-address=127.0.0.1:$pport");
    }
    POSIX::_exit(127);
}

sub query {
    my ($q) = @_;
    $q =~ s/([^A-Za-z0-9_])/sprintf('%%%02X', ord($1))/ge;
    return http_get($pport, "/api/v1/query?query=$q");
}

my ($up, $hits) = ('', '');
for (1 .. 60) {
    $up = query('up{job="memcached"}');
    last if $up =~ /"value":\[[\d.]+,"1"\]/;
    MemcachedTest::sleep(0.5);
}
like($up, qr/"value":\[[\d.]+,"1"\]/, 'Prometheus scrapes the endpoint (up == 1)');
like(query('memcached_up'), qr/"value":\[[\d.]+,"1"\]/, 'memcached_up is 1');
$hits = query('sum(memcached_commands_total{command="get",status="hit"})');
like($hits, qr/"value":\[[\d.]+,"3"\]/, 'PromQL over the scraped counters: three get hits');
like(query('memcached_slab_current_items{slab="1"}'), qr/"value":\[[\d.]+,"1"\]/,
    'a per-slab series');
like(query('count(memcached_version)'), qr/"value":\[[\d.]+,"1"\]/, 'memcached_version');

kill('TERM', $pid);
waitpid($pid, 0);
done_testing();
