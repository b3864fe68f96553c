#!/usr/bin/env perl
# incr/decr (64-bit wrap, floor at 0, in-place rewrite padded with spaces), touch, gat/gats
# and flush_all, byte for byte as C 1.6.45.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached();
my $sock = $server->sock;

sub req { return mem_request($sock, @_) }

is(req("set n 0 0 2\r\n10\r\n", 1), "STORED\r\n", "set a number");
is(req("incr n 5\r\n", 1), "15\r\n", "incr");
is(req("gets n\r\n", 3), "VALUE n 0 2 3\r\n15\r\nEND\r\n", "incr takes a new CAS");
is(req("decr n 100\r\n", 1), "0\r\n", "decr floors at 0");
is(req("get n\r\n", 3), "VALUE n 0 2\r\n0 \r\nEND\r\n", "a shorter number is padded with spaces");
is(req("incr n 18446744073709551615\r\n", 1), "18446744073709551615\r\n", "up to 2^64-1");
is(req("incr n 2\r\n", 1), "1\r\n", "incr wraps around 2^64");
is(req("incr nope 1\r\n", 1), "NOT_FOUND\r\n", "incr a missing key");
is(req("incr n abc\r\n", 1), "CLIENT_ERROR invalid numeric delta argument\r\n", "bad delta");
is(req("set s 0 0 2\r\nab\r\nincr s 1\r\n", 2),
    "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n", "non-numeric value");
is(req("set w 0 0 1\r\n9\r\nincr w 1\r\n", 2), "STORED\r\n10\r\n", "a longer number needs a new item");
is(req("get w\r\n", 3), "VALUE w 0 2\r\n10\r\nEND\r\n", "grown value");
is(req("decr w 1 noreply\r\nget w\r\n", 3), "VALUE w 0 2\r\n9 \r\nEND\r\n", "decr noreply");

is(req("touch n 100\r\n", 1), "TOUCHED\r\n", "touch");
is(req("touch nope 1\r\n", 1), "NOT_FOUND\r\n", "touch a missing key");
is(req("touch n abc\r\n", 1), "CLIENT_ERROR invalid exptime argument\r\n", "touch with a bad exptime");
is(req("gat 100 w nope\r\n", 3), "VALUE w 0 2\r\n9 \r\nEND\r\n", "gat");
like(req("gats 0 w\r\n", 3), qr/^VALUE w 0 2 \d+\r\n9 \r\nEND\r\n$/, "gats");
is(req("gat x w\r\n", 1), "CLIENT_ERROR invalid exptime argument\r\n", "gat with a bad exptime");
is(req("touch w -1\r\nget w\r\n", 2), "TOUCHED\r\nEND\r\n", "a negative exptime expires at once");

is(req("flush_all\r\n", 1), "OK\r\n", "flush_all");
is(req("get n s\r\n", 1), "END\r\n", "everything is gone");
is(req("set z 0 0 1\r\nz\r\nget z\r\n", 4), "STORED\r\nVALUE z 0 1\r\nz\r\nEND\r\n",
    "new items after a flush live");
is(req("flush_all noreply\r\nflush_all abc\r\n", 1), "CLIENT_ERROR invalid exptime argument\r\n",
    "flush_all noreply is silent; a bad delay is refused");
is(req("flush_all 0\r\n", 1), "OK\r\n", "flush_all 0 is immediate");

my $stats = mem_stats($sock);
is($stats->{incr_hits}, 4, "incr_hits");
is($stats->{incr_misses}, 1, "incr_misses");
is($stats->{decr_hits}, 2, "decr_hits");
is($stats->{touch_hits}, 4, "touch_hits");
is($stats->{touch_misses}, 2, "touch_misses");
is($stats->{cmd_touch}, 6, "cmd_touch");
is($stats->{cmd_flush}, 4, "cmd_flush");

# Every command that looks a key up drops an expired item it finds and counts get_expired,
# not only get (the maintainer is off so that only allocations reclaim from the tails).
{
    my $srv = new_memcached("-o no_lru_maintainer");
    my $c = $srv->sock;
    my @steps = (
        ["set k 0 -1 1\r\nx\r\n", "STORED"],
        ["delete k\r\n", "NOT_FOUND"],
        ["set k 0 -1 1\r\nx\r\n", "STORED"],
        ["set k 0 0 1\r\ny\r\n", "STORED"],
        ["set j 0 -1 1\r\nx\r\n", "STORED"],
        ["incr j 1\r\n", "NOT_FOUND"],
        ["set t 0 -1 1\r\nx\r\n", "STORED"],
        ["touch t 10\r\n", "NOT_FOUND"],
        ["set u 0 -1 1\r\nx\r\n", "STORED"],
        ["append u 0 0 1\r\nz\r\n", "NOT_STORED"],
    );
    for my $s (@steps) {
        is(mem_request($c, $s->[0], 1), "$s->[1]\r\n", "expired lookups: $s->[1]");
    }
    # The second "set k" finds nothing: in flat mode its allocation first reclaimed the
    # expired k at the LRU tail (counted as reclaimed instead), as C does.
    my $st = mem_stats($c);
    is($st->{get_expired}, 4, "get_expired counts delete, incr, touch, append");
    is($st->{reclaimed}, 1, "the tail pull of an allocation reclaimed one");
}

done_testing();
