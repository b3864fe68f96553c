#!/usr/bin/env perl
# The LRU maintainer starts crawls by itself, the first right after start-up
# (lru_crawler_starts), and with the crawler reclaims expired items without any request.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached();
my $sock = $server->sock;

my $s;
for (1 .. 100) {
    $s = mem_stats($sock);
    last if $s->{lru_crawler_starts} >= 1;
    MemcachedTest::sleep(0.05);
}
cmp_ok($s->{lru_crawler_starts}, '>=', 1, "a crawl starts right after start-up");

# Items that never expire sit below the expiring ones, so the LRU tail walks stop at them.
print $sock join('', map { "set keep$_ 0 0 1 noreply\r\nx\r\n" } 1 .. 5);
print $sock join('', map { "set exp$_ 0 3 1 noreply\r\nx\r\n" } 1 .. 10);
like(mem_request($sock, "version\r\n", 1), qr/^VERSION /, "15 items stored");
# The first crawl found nothing to expire, so the next is a minute or more away: move the
# clock past it (and past the items' expiry). The maintainer sets that next time on its first
# tick after the crawl ends, from the clock of that tick; on a loaded machine the tick can come
# after the jump, putting the next crawl a minute past it, so the clock moves on again then.
for (1 .. 100) {
    $s = mem_stats($sock);
    last if !$s->{lru_crawler_running};
    MemcachedTest::sleep(0.05);
}
MemcachedTest::sleep(1.2);
is(mem_request($sock, "debugtime 70\r\n", 1), "OK\r\n", "clock moved 70 s on");

ROUND: for my $round (1 .. 3) {
    for (1 .. 100) {
        $s = mem_stats($sock);
        last ROUND if $s->{curr_items} == 5;
        MemcachedTest::sleep(0.05);
    }
    mem_request($sock, "debugtime 70\r\n", 1);
}
is($s->{curr_items}, 5, "the expired items went without a request");
cmp_ok($s->{reclaimed} + $s->{crawler_reclaimed}, '>=', 1, "reclaimed in the background");
mem_get_is($sock, "keep1", "x");

done_testing();
