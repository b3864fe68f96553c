#!/usr/bin/env perl
# The general stats counters meta commands move (cmd_get, get_hits, cmd_touch, cmd_set,
# cas_*, delete_*, incr_*/decr_*, cmd_meta, curr_items, total_items, ...): each meta
# command of a fixed sequence on a fresh server, with the exact change of every counter,
# as C 1.6.45 counts them.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;


my @COUNTERS = qw(
    cmd_get get_hits get_misses get_expired get_flushed cmd_set cmd_touch touch_hits
    touch_misses delete_hits delete_misses incr_hits incr_misses decr_hits decr_misses
    cas_hits cas_misses cas_badval cmd_meta store_too_large curr_items total_items
);

# No background LRU threads: they would reap expired and flushed items on their own and
# move curr_items (and skip get_expired/get_flushed) at unpredictable moments.
my $server = new_memcached("-o no_lru_crawler,no_lru_maintainer");
my $sock = $server->sock;

sub counters {
    my %s = mem_meta_batch($sock, "stats\r\n") =~ /^STAT (\S+) (\S+)\r$/mg;
    return { map { $_ => $s{$_} } @COUNTERS };
}

my $before = counters();
is_deeply($before, { map { $_ => 0 } @COUNTERS }, "a fresh server counts nothing");

# step($request, $reply, { counter => change, ... }): counters not named must not move.
sub step {
    my ($req, $reply, $changes) = @_;
    (my $name = $req) =~ s/\r\n.*//s;
    is(mem_meta_batch($sock, $req), $reply, "$name: reply");
    my $after = counters();
    my %delta = map { $_ => $after->{$_} - $before->{$_} } @COUNTERS;
    my %want = map { $_ => 0 } @COUNTERS;
    %want = (%want, %$changes);
    is_deeply(\%delta, \%want, "$name: counters");
    $before = $after;
}

step("debugtime p\r\n", "OK\r\n", {});

# --- mg ----------------------------------------------------------------
step("mg a v\r\n", "EN\r\n", { cmd_get => 1, get_misses => 1 });
step("mg a v q\r\n", "", { cmd_get => 1, get_misses => 1 });
step("ms a 1\r\n1\r\n", "HD\r\n", { cmd_set => 1, curr_items => 1, total_items => 1 });
step("mg a v\r\n", "VA 1\r\n1\r\n", { cmd_get => 1, get_hits => 1 });
step("mg a\r\n", "HD\r\n", { cmd_get => 1, get_hits => 1 });
step("mg a s u c\r\n", "HD s1 c2\r\n", { cmd_get => 1, get_hits => 1 });
step("mg a T10\r\n", "HD\r\n", { cmd_touch => 1, touch_hits => 1 });
step("mg b T10\r\n", "EN\r\n", { cmd_get => 1, get_misses => 1 });    # a touch miss counts as a get miss
step("mg a z\r\n", "CLIENT_ERROR invalid flag\r\n", {});
step("mg a v v\r\n", "CLIENT_ERROR duplicate flag\r\n", {});
step("mg n N10\r\n", "HD W\r\n", { cmd_get => 1, get_hits => 1, curr_items => 1, total_items => 1 });
step("mg n N10\r\n", "HD Z\r\n", { cmd_get => 1, get_hits => 1 });
step("mg n N10 T20\r\n", "HD Z\r\n", { cmd_touch => 1, touch_hits => 1 });
step("ms e 1 T5\r\n1\r\n", "HD\r\n", { cmd_set => 1, curr_items => 1, total_items => 1 });
step("debugtime 6\r\n", "OK\r\n", {});
step("mg e v\r\n", "EN\r\n", { cmd_get => 1, get_misses => 1, get_expired => 1, curr_items => -1 });

# --- ms ----------------------------------------------------------------
step("ms a 1 ME\r\n1\r\n", "NS\r\n", { cmd_set => 1 });
step("ms a 1 MA\r\n2\r\n", "HD\r\n", { cmd_set => 1, total_items => 1 });
step("ms x 1 MA\r\n1\r\n", "NS\r\n", { cmd_set => 1 });
step("ms x 1 MA N0\r\n1\r\n", "HD\r\n", { cmd_set => 1, curr_items => 1, total_items => 1 });
step("ms a 1 C1\r\n1\r\n", "EX\r\n", { cmd_set => 1, cas_badval => 1 });
step("ms zz 1 C1\r\n1\r\n", "NF\r\n", { cmd_set => 1, cas_misses => 1 });
step("mg a c\r\n", "HD c6\r\n", { cmd_get => 1, get_hits => 1 });
step("ms a 1 C6\r\n3\r\n", "HD\r\n", { cmd_set => 1, cas_hits => 1, total_items => 1 });
step("ms a 1 C1 I\r\n4\r\n", "HD\r\n", { cmd_set => 1, cas_hits => 1, total_items => 1 });
step("ms a 1 MA C1\r\n4\r\n", "EX\r\n", { cmd_set => 1 });
step("ms a 1 z\r\n1\r\n", "CLIENT_ERROR invalid flag\r\n", {});
step("ms a 2\r\n111\r\n", "CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\n",
    { cmd_set => 1 });
step("ms big 2000000\r\n" . ('b' x 2000000) . "\r\n", "SERVER_ERROR object too large for cache\r\n",
    { store_too_large => 1 });

# --- md ----------------------------------------------------------------
step("md a\r\n", "HD\r\n", { delete_hits => 1, curr_items => -1 });
step("md a\r\n", "NF\r\n", { delete_misses => 1 });
step("md a q\r\n", "NF\r\n", { delete_misses => 1 });
step("ms a 1\r\n1\r\n", "HD\r\n", { cmd_set => 1, curr_items => 1, total_items => 1 });
step("md a I\r\n", "HD\r\n", {});
step("md a x\r\n", "HD\r\n", { delete_hits => 1, total_items => 1 });
step("md a C1\r\n", "EX\r\n", { delete_misses => 1 });
step("md a z\r\n", "CLIENT_ERROR invalid flag\r\n", {});

# --- ma ----------------------------------------------------------------
step("ma a\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", {});
step("ma q\r\n", "NF\r\n", { incr_misses => 1 });
step("ma q MD\r\n", "NF\r\n", { decr_misses => 1 });
step("ma q N0 J5\r\n", "HD\r\n", { curr_items => 1, total_items => 1 });
step("ma q\r\n", "HD\r\n", { incr_hits => 1 });
step("ma q M- q\r\n", "", { decr_hits => 1 });
step("ma q C99\r\n", "EX\r\n", {});
step("ma q D99 v\r\n", "VA 3\r\n104\r\n", { incr_hits => 1, total_items => 1 });
step("ma q z\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n", {});

# --- me, mn ----------------------------------------------------------------
step("me a\r\n", "ME a exp=-1 la=0 cas=16 fetch=no cls=1 size=60\r\n", { cmd_meta => 1 });
step("me zz\r\n", "EN\r\n", { cmd_meta => 1 });
step("me " . ('k' x 251) . "\r\n", "CLIENT_ERROR bad command line format\r\n", {});
step("mn\r\n", "MN\r\n", {});

# --- flushed items ---------------------------------------------------------
# flush_all unlinks at once only the items touched within the last second; move the clock
# so that q is older and gets flushed lazily, by the next fetch. (debugtime 0 moves the
# paused clock by the 6 s already shifted.)
step("debugtime 0\r\n", "OK\r\n", {});
step("flush_all\r\n", "OK\r\n", {});
step("mg q v\r\n", "EN\r\n", { cmd_get => 1, get_misses => 1, get_flushed => 1, curr_items => -1 });

done_testing();
