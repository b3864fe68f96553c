#!/usr/bin/env perl
# The LRU crawler reclaims expired and flushed items when asked (`lru_crawler crawl`), with
# C's replies for every subcommand and error, its counters, and enable/disable.
# (The maintainer is off so that only the crawler reclaims.)

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached("-o no_lru_maintainer");
my $sock = $server->sock;

is(mem_stats($sock, "settings")->{lru_crawler}, "yes", "crawler on by default");
my $batch = join('', map { "set e$_ 0 1 1 noreply\r\nx\r\n" } 1 .. 10)
    . join('', map { "set k$_ 0 0 1 noreply\r\nx\r\n" } 1 .. 5);
print $sock $batch;
is(mem_request($sock, "version\r\n", 1) =~ /^VERSION/ ? 1 : 0, 1, "15 items stored");
MemcachedTest::sleep(2.2);

is(mem_request($sock, "lru_crawler crawl 1\r\n", 1), "OK\r\n", "crawl class 1");
my $s;
for (1 .. 100) {
    $s = mem_stats($sock);
    last if !$s->{lru_crawler_running} && $s->{curr_items} == 5;
    MemcachedTest::sleep(0.05);
}
is($s->{curr_items}, 5, "expired items reclaimed without being fetched");
is($s->{crawler_reclaimed}, 10, "crawler_reclaimed");
is($s->{crawler_items_checked}, 15, "crawler_items_checked");
is($s->{expired_unfetched}, 10, "they were never fetched");
is($s->{reclaimed}, 0, "no tail reclaims");
is($s->{lru_crawler_starts}, 1, "one crawl started");
is($s->{lru_crawler_running}, 0, "and finished");
my $items = mem_stats($sock, "items");
is($items->{"items:1:crawler_reclaimed"}, 10, "per class");
mem_get_is($sock, "k1", "x");

# flush_all with a delay leaves items for the crawler too.
print $sock "flush_all 1\r\n";
is(scalar <$sock>, "OK\r\n", "delayed flush");
MemcachedTest::sleep(2.2);
is(mem_request($sock, "lru_crawler crawl all\r\n", 1), "OK\r\n", "crawl all");
for (1 .. 100) {
    $s = mem_stats($sock);
    last if !$s->{lru_crawler_running} && $s->{curr_items} == 0;
    MemcachedTest::sleep(0.05);
}
is($s->{curr_items}, 0, "flushed items reclaimed");
is($s->{crawler_reclaimed}, 15, "five more reclaimed");

my @cases = (
    ["lru_crawler crawl 99", "BADCLASS invalid class id"],
    ["lru_crawler crawl x", "BADCLASS invalid class id"],
    ["lru_crawler crawl 0", "BADCLASS invalid class id"],
    ["lru_crawler crawl 64", "BADCLASS invalid class id"],
    ["lru_crawler sleep 2000000", "CLIENT_ERROR sleep must be one second or less"],
    ["lru_crawler sleep x", "CLIENT_ERROR bad command line format"],
    ["lru_crawler sleep 50", "OK"],
    ["lru_crawler tocrawl 7", "OK"],
    ["lru_crawler tocrawl -1", "CLIENT_ERROR bad command line format"],
    ["lru_crawler bogus", "ERROR"],
    ["lru_crawler", "ERROR"],
    ["lru_crawler crawl", "ERROR"],
    ["lru_crawler disable", "OK"],
    ["lru_crawler disable", "OK"],
    ["lru_crawler crawl 1", "CLIENT_ERROR lru crawler disabled"],
);
for my $c (@cases) {
    is(mem_request($sock, "$c->[0]\r\n", 1), "$c->[1]\r\n", "'$c->[0]'");
}
# The stopped thread must have left before a new one may start (as in C: until then,
# enable answers "ERROR failed to start lru crawler thread").
my $enabled = '';
for (1 .. 50) {
    $enabled = mem_request($sock, "lru_crawler enable\r\n", 1);
    last if $enabled eq "OK\r\n";
    MemcachedTest::sleep(0.05);
}
is($enabled, "OK\r\n", "'lru_crawler enable' once the old thread left");
is(mem_request($sock, "lru_crawler enable\r\n", 1),
    "ERROR failed to start lru crawler thread\r\n", "'lru_crawler enable' when running");
my $set = mem_stats($sock, "settings");
is($set->{lru_crawler_sleep}, 50, "settings: sleep");
is($set->{lru_crawler_tocrawl}, 7, "settings: tocrawl");
is($set->{lru_crawler}, "yes", "settings: enabled again");

{
    my $off = new_memcached("-o no_lru_crawler");
    my $o = $off->sock;
    is(mem_stats($o, "settings")->{lru_crawler}, "no", "no_lru_crawler");
    ok(!exists mem_stats($o)->{lru_crawler_running}, "no crawler stats when off");
    is(mem_request($o, "lru_crawler crawl 1\r\n", 1), "CLIENT_ERROR lru crawler disabled\r\n",
       "crawl refused when off");
}

done_testing();
