#!/usr/bin/env perl
# Every thread carries C memcached's name, so `top -H`, `ps -L` and per-thread monitoring
# read the same for either server.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

plan skip_all => 'needs /proc' unless -d '/proc/self/task';

my $server = new_memcached('-t 3');
# The harness's pid is timedrun's; the server is its child.
my $pid = $server->pid;
if (open(my $fh, '<', "/proc/$pid/task/$pid/children")) {
    my ($child) = split ' ', (<$fh> // '');
    $pid = $child if $child;
}

my %names;
for (1 .. 100) {
    %names = ();
    for my $task (glob("/proc/$pid/task/*")) {
        open(my $fh, '<', "$task/comm") or next;
        my $n = <$fh>;
        chomp $n;
        $names{$n}++;
    }
    last if ($names{'mc-worker'} // 0) == 3 && $names{'mc-log'};
    MemcachedTest::sleep(0.05);
}

is($names{'mc-worker'}, 3, "one mc-worker per -t");
for my $n (qw(mc-log mc-lrumaint mc-itemcrawler mc-slabmaint mc-assocmaint)) {
    is($names{$n}, 1, "one $n thread");
}
is(scalar(keys %names), 7, "no other threads than the dispatcher and these")
    or diag(join(' ', sort keys %names));

done_testing();
