#!/usr/bin/env perl
# -R (requests per event): a client with many pipelined requests yields to
# others every N requests; each yield is counted in conn_yields.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';

# [ -R value, pipelined requests, expected conn_yields ]
my @cases = (
    [20, 10, 0],
    [20, 100, 5],
    [5, 5, 1],
    [5, 40, 8],
    [5, 100, 20],
    [2, 10, 5],
    [1, 10, 9],
);

for my $case (@cases) {
    my ($r, $count, $yields) = @$case;
    my $server = new_memcached("-R $r");
    my $sock = $server->new_sock;
    syswrite($sock, "version\r\n" x $count);
    my $answers = 0;
    while ($answers < $count) {
        my $line = <$sock>;
        last unless defined $line && $line eq "VERSION $version\r\n";
        $answers++;
    }
    is($answers, $count, "-R $r: all $count pipelined requests answered");
    # The first request on the startup connection: its own yield, if any,
    # comes after the reply.
    is(mem_stats($server->sock)->{conn_yields}, $yields, "-R $r, $count requests: $yields yields");
    is(mem_stats($server->sock, 'settings')->{reqs_per_event}, $r, "-R $r: reqs_per_event");
}

done_testing();
