#!/usr/bin/env perl
# The LRU maintainer thread: it runs (lru_maintainer_juggles), moves idle items from HOT to
# COLD, applies queued COLD hits (COLD -> WARM), reclaims expired items with no client
# traffic, and is absent with -o no_lru_maintainer. Also: `stats reset` clears the per-LRU
# counters and total_items.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

# Polls `stats items` (or `stats`) until $cond holds or ~5 s pass; returns the last stats.
sub wait_stats {
    my ($sock, $what, $cond) = @_;
    my $s;
    for (1 .. 250) {
        $s = mem_stats($sock, $what);
        return $s if $cond->($s);
        MemcachedTest::sleep(0.02);
    }
    return $s;
}

my $server = new_memcached();
my $sock = $server->sock;

my $st = mem_stats($sock);
like($st->{lru_maintainer_juggles}, qr/^\d+$/, "lru_maintainer_juggles is reported");
my $j0 = $st->{lru_maintainer_juggles};
$st = wait_stats($sock, undef, sub { $_[0]{lru_maintainer_juggles} > $j0 });
cmp_ok($st->{lru_maintainer_juggles}, '>', $j0, "the maintainer keeps running");
is(mem_stats($sock, "settings")->{lru_maintainer_thread}, "yes", "settings: thread on");

# A lone item is over HOT's share (20% of the class), so it goes to COLD at once.
print $sock "set idle 0 0 5\r\nhello\r\n";
is(scalar <$sock>, "STORED\r\n", "stored idle");
my $items = wait_stats($sock, "items", sub { $_[0]{"items:1:number_cold"} == 1 });
is($items->{"items:1:number_cold"}, 1, "the item moved to COLD");
is($items->{"items:1:number_hot"}, 0, "HOT is empty");
is($items->{"items:1:moves_to_cold"}, 1, "moves_to_cold counted");

# Two fetches make a COLD item active; the maintainer moves it to WARM, and from there (over
# WARM's share) back to COLD.
mem_get_is($sock, "idle", "hello");
mem_get_is($sock, "idle", "hello");
$items = wait_stats($sock, "items", sub { $_[0]{"items:1:moves_to_warm"} == 1 });
is($items->{"items:1:moves_to_warm"}, 1, "a COLD item hit twice moved to WARM");
$items = wait_stats($sock, "items", sub { $_[0]{"items:1:moves_to_cold"} == 2 });
is($items->{"items:1:moves_to_cold"}, 2, "and back to COLD");
is($items->{"items:1:number_cold"}, 1, "it is in COLD");
is($items->{"items:1:hits_to_cold"}, 2, "both hits were on COLD");
is(mem_stats($sock)->{lru_bumps_dropped}, 0, "no bump dropped");

# stats reset clears the per-LRU counters and total_items.
print $sock "stats reset\r\n";
is(scalar <$sock>, "RESET\r\n", "stats reset");
$items = mem_stats($sock, "items");
is($items->{"items:1:moves_to_cold"}, 0, "moves_to_cold cleared");
is($items->{"items:1:moves_to_warm"}, 0, "moves_to_warm cleared");
is($items->{"items:1:number"}, 1, "the item itself stays");
$st = mem_stats($sock);
is($st->{total_items}, 0, "total_items cleared");
is($st->{moves_to_cold}, 0, "moves_to_cold total cleared");
is($st->{curr_items}, 1, "curr_items is a gauge, not cleared");

# An expired item at a tail is reclaimed without any request touching it.
{
    my $srv = new_memcached();
    my $c = $srv->sock;
    print $c "set brief 0 1 3\r\nabc\r\n";
    is(scalar <$c>, "STORED\r\n", "stored an item living one second");
    my $i = wait_stats($c, "items", sub { !exists $_[0]{"items:1:number"} });
    ok(!exists $i->{"items:1:number"}, "the class is empty again");
    my $s = mem_stats($c);
    is($s->{reclaimed}, 1, "the expired item was reclaimed by the maintainer");
    is($s->{expired_unfetched}, 1, "it was never fetched");
    is($s->{curr_items}, 0, "no items left");
}

# Without the maintainer: no thread, no juggles stat, no segments.
my $flat = new_memcached("-o no_lru_maintainer");
my $fs = $flat->sock;
ok(!exists mem_stats($fs)->{lru_maintainer_juggles}, "no juggles stat without the thread");
is(mem_stats($fs, "settings")->{lru_maintainer_thread}, "no", "settings: thread off");
is(mem_stats($fs, "settings")->{lru_segmented}, "no", "settings: flat LRU");
print $fs "set brief 0 1 3\r\nabc\r\n";
is(scalar <$fs>, "STORED\r\n", "stored");
MemcachedTest::sleep(2.2);
my $fi = mem_stats($fs, "items");
is($fi->{"items:1:number"}, 1, "without the thread an expired item waits for a request");
mem_get_is($fs, "brief", undef);

done_testing();
