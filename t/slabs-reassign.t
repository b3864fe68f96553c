#!/usr/bin/env perl
# `slabs reassign <src> <dst>`: every reply C 1.6.45 gives (OK, BUSY, BADCLASS, NOSPARE,
# SAME, the CLIENT_ERRORs, ERROR), "-1" as the source, pages taken from a class to the global
# pool and back, and the mover's counters in "stats" and "stats slabs" as pages move.
# A page move is held up on purpose by keeping one item's lock with `debugitem lock`.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

# Sends one line and returns the one-line reply.
sub cmd {
    my ($sock, $line) = @_;
    print $sock "$line\r\n";
    my $reply = <$sock>;
    return $reply;
}

# Polls "stats[ TYPE]" until $done->(stats) holds or $secs seconds have gone by; returns the
# last stats seen (the caller's checks then report what did not happen).
sub wait_stats {
    my ($sock, $type, $secs, $done) = @_;
    my $deadline = time() + $secs;
    while (1) {
        my $s = mem_stats($sock, $type);
        return $s if $done->($s) || time() > $deadline;
        MemcachedTest::sleep(0.05);
    }
}

# A value that differs from key to key (and in length), so a misplaced byte shows.
sub value_for {
    my ($key, $len) = @_;
    my $unit = "<$key>";
    my $v = $unit x (int($len / length($unit)) + 1);
    return substr($v, 0, $len);
}

# Stores key => value pairs with "set", pipelined in groups; returns how many got STORED.
sub store_all {
    my ($sock, $pairs) = @_;
    my $stored = 0;
    my @todo = @$pairs;
    while (my @batch = splice(@todo, 0, 40)) {
        for my $p (@batch) {
            my ($k, $v) = @$p;
            print $sock "set $k 0 0 " . length($v) . "\r\n$v\r\n";
        }
        for (@batch) {
            my $r = <$sock>;
            $stored++ if defined $r && $r eq "STORED\r\n";
        }
    }
    return $stored;
}

# Deletes the keys (pipelined); returns how many replied DELETED.
sub delete_all {
    my ($sock, @keys) = @_;
    my $deleted = 0;
    while (my @batch = splice(@keys, 0, 100)) {
        print $sock "delete $_\r\n" for @batch;
        for (@batch) {
            my $r = <$sock>;
            $deleted++ if defined $r && $r eq "DELETED\r\n";
        }
    }
    return $deleted;
}

# Fetches the keys with multi-gets; returns { key => value } for the hits.
sub fetch_all {
    my ($sock, @keys) = @_;
    my %got;
    while (my @batch = splice(@keys, 0, 50)) {
        print $sock "get @batch\r\n";
        while (defined(my $line = <$sock>)) {
            last if $line eq "END\r\n";
            my ($k, $len) = $line =~ /^VALUE (\S+) \d+ (\d+)\r\n$/
                or die "unexpected line in get reply: $line";
            my $data = '';
            while (length($data) < $len + 2) {
                read($sock, $data, $len + 2 - length($data), length($data)) or last;
            }
            $got{$k} = substr($data, 0, $len);
        }
    }
    return \%got;
}

# The keys whose value did not come back exactly.
sub wrong_values {
    my ($sock, $want) = @_;
    my $got = fetch_all($sock, sort keys %$want);
    return grep { !defined $got->{$_} || $got->{$_} ne $want->{$_} } sort keys %$want;
}

# The classes with pages, from "stats slabs".
sub classes_with_pages {
    my ($slabs) = @_;
    return sort { $a <=> $b } map { /^(\d+):total_pages$/ ? $1 : () } keys %$slabs;
}

my $OK       = "OK\r\n";
my $BUSY     = "BUSY currently processing reassign request\r\n";
my $BADCLASS = "BADCLASS invalid src or dst class id\r\n";
my $NOSPARE  = "NOSPARE source class has no spare pages\r\n";
my $SAME     = "SAME src and dst class are identical\r\n";
my $BADLINE  = "CLIENT_ERROR bad command line format\r\n";

# -------------------------------------------------------------------------------------------
# Replies on a server with no pages anywhere. The automover is off so that only our
# commands move pages. With the default -n/-f/slab_chunk_max the largest class is 39.

my $server = new_memcached("-m 12 -o slab_automove=0");
my $sock = $server->sock;

is(mem_stats($sock, "settings")->{slab_reassign}, "yes", "slab_reassign is on by default");

my @syntax = (
    # request                                reply
    ["slabs reassign",                       "ERROR\r\n"],
    ["slabs reassign 1",                     "ERROR\r\n"],
    ["slabs reassign 1 2 3",                 "ERROR\r\n"],
    ["slabs reassign 1 2 3 4",               "ERROR\r\n"],
    ["slabs reassignx 1 2",                  "ERROR\r\n"],
    ["slabs REASSIGN 1 2",                   "ERROR\r\n"],
    # the subcommand may be shortened, down to one letter
    ["slabs r 1 2",                          $NOSPARE],
    ["slabs reassig 1 2",                    $NOSPARE],
    ["slabs reassign x 2",                   $BADLINE],
    ["slabs reassign 1 y",                   $BADLINE],
    ["slabs reassign x x",                   $BADLINE],
    ["slabs reassign 1x 2",                  $BADLINE],
    ["slabs reassign 1 2.0",                 $BADLINE],
    ["slabs reassign +1 2",                  $BADLINE],
    ["slabs reassign 1 --1",                 $BADLINE],
    ["slabs reassign 2147483648 1",          $BADLINE],
    ["slabs reassign -2147483649 1",         $BADLINE],
    ["slabs reassign 000000000001 2",        $BADLINE],    # twelve characters
    ["slabs reassign 00000000001 2",         $NOSPARE],    # eleven are fine
    ["slabs reassign 2147483647 1",          $BADCLASS],
    ["slabs reassign -2147483648 1",         $BADCLASS],
    # SAME is checked before anything else, even for classes that do not exist
    ["slabs reassign 1 1",                   $SAME],
    ["slabs reassign 0 0",                   $SAME],
    ["slabs reassign -1 -1",                 $SAME],
    ["slabs reassign 5000 5000",             $SAME],
    ["slabs reassign -7 -7",                 $SAME],
    ["slabs reassign - -",                   $SAME],       # a lone "-" reads as 0
    ["slabs reassign -0 0",                  $SAME],
    ["slabs reassign -2 1",                  $BADCLASS],
    ["slabs reassign 1 -2",                  $BADCLASS],
    ["slabs reassign 1 -1",                  $BADCLASS],   # -1 is for the source only
    ["slabs reassign 40 1",                  $BADCLASS],
    ["slabs reassign 1 40",                  $BADCLASS],
    ["slabs reassign 63 1",                  $BADCLASS],
    ["slabs reassign 64 1",                  $BADCLASS],
    ["slabs reassign 1 39",                  $NOSPARE],
    ["slabs reassign 39 1",                  $NOSPARE],
    ["slabs reassign 1 2",                   $NOSPARE],
    ["slabs reassign 2 0",                   $NOSPARE],    # dst 0: the global page pool
    ["slabs reassign 0 1",                   $NOSPARE],    # the pool has no pages either
    ["slabs reassign - 1",                   $NOSPARE],
    ["slabs reassign 1 -",                   $NOSPARE],
    # no class has two pages: "any class" finds none
    ["slabs reassign -1 0",                  $BADCLASS],
    ["slabs reassign -1 1",                  $BADCLASS],
    ["slabs reassign 1 2 ",                  $NOSPARE],
    ["slabs  reassign  1  2",                $NOSPARE],
);
for my $c (@syntax) {
    my ($req, $reply) = @$c;
    is(cmd($sock, $req), $reply, "'$req'");
}
print $sock "slabs reassign 1 2\n";
is(scalar <$sock>, $NOSPARE, "a bare newline ends the command too");

# noreply silences every outcome, errors included.
for my $req ("slabs reassign 1 2", "slabs reassign 1 1", "slabs reassign x 2",
             "slabs reassign 1", "slabs reassign 1 2 3", "slabs reassign -5 1") {
    print $sock "$req noreply\r\n";
    like(cmd($sock, "version"), qr/^VERSION /, "'$req noreply' is silent");
}

# The largest class exists (one page of it now), the next one up does not.
{
    my $big = 'B' x 500_000;
    is(store_all($sock, [["big", $big]]), 1, "stored an item for the largest class");
    my @cls = classes_with_pages(mem_stats($sock, "slabs"));
    is_deeply(\@cls, [39], "it went into class 39");
    is(cmd($sock, "slabs reassign 39 40"), $BADCLASS, "40 is past the largest class");
    is(cmd($sock, "slabs reassign 39 1"), $NOSPARE, "one page is no spare");
    is(cmd($sock, "slabs reassign -1 39"), $BADCLASS, "no other class to pick from");
    is(delete_all($sock, "big"), 1, "deleted it");
}

# -------------------------------------------------------------------------------------------
# Pages moving. Class A gets three full pages of ~15 KB items, then its last page is emptied.

my $stats = mem_stats($sock);
for my $k (qw(slabs_moved slab_reassign_running slab_reassign_rescues
              slab_reassign_chunk_rescues slab_reassign_inline_reclaim
              slab_reassign_busy_items slab_reassign_busy_nomem
              slab_reassign_busy_deletes slab_global_page_pool)) {
    is($stats->{$k}, 0, "$k starts at 0");
}
is($stats->{slab_reassign_last_busy_status}, "none", "no busy status yet");

my $VLEN = 15000;
is(store_all($sock, [["a1", value_for("a1", $VLEN)]]), 1, "first item of class A");
my $slabs = mem_stats($sock, "slabs");
my ($A) = grep { $_ != 39 } classes_with_pages($slabs);
ok(defined $A, "class A found");
my $per = $slabs->{"$A:chunks_per_page"};
cmp_ok($per, '>=', 20, "class A has $per chunks per page");

my %want;    # key => value of everything that must still be there
$want{a1} = value_for("a1", $VLEN);
my @pairs = map { ["a$_", value_for("a$_", $VLEN - $_ % 7)] } 2 .. 3 * $per;
$want{$_->[0]} = $_->[1] for @pairs;
is(store_all($sock, \@pairs), scalar(@pairs), "filled three pages of class A");
$slabs = mem_stats($sock, "slabs");
is($slabs->{"$A:total_pages"}, 3, "class A has 3 pages");
is($slabs->{"$A:free_chunks"}, 0, "all of them full");
my $malloced = $slabs->{total_malloced};

# The newest third went into the last page: deleting it leaves room for the first page's items.
my @last = map { "a$_" } 2 * $per + 1 .. 3 * $per;
is(delete_all($sock, @last), $per, "emptied the last page");
delete @want{@last};
is(mem_stats($sock, "slabs")->{"$A:free_chunks"}, $per, "one page of free chunks");

is(cmd($sock, "slabs reassign $A 0"), $OK, "class A -> global pool");
$stats = wait_stats($sock, undef, 10,
    sub { $_[0]{slabs_moved} == 1 && $_[0]{slab_reassign_running} == 0 });
is($stats->{slabs_moved}, 1, "one page moved");
is($stats->{slab_reassign_running}, 0, "mover idle again");
is($stats->{slab_reassign_rescues}, $per, "every item of the page was rescued");
is($stats->{slab_reassign_chunk_rescues}, 0, "no chunked items to rescue");
is($stats->{slab_reassign_inline_reclaim}, 0, "no inline reclaim");
is($stats->{slab_global_page_pool}, 1, "the page is in the global pool");
is($stats->{evictions}, 0, "nothing evicted");
$slabs = mem_stats($sock, "slabs");
is($slabs->{"$A:total_pages"}, 2, "class A is down to 2 pages");
is($slabs->{"$A:used_chunks"}, 2 * $per, "holding all the items");
is($slabs->{"$A:free_chunks"}, 0, "and no free chunk");
is($slabs->{total_malloced}, $malloced, "the page stays allocated");
is_deeply([wrong_values($sock, \%want)], [], "every item reads back intact");

# Emptied class: its pages move without rescuing anything.
is(delete_all($sock, sort keys %want), scalar(keys %want), "deleted the rest of class A");
%want = ();
is(cmd($sock, "slabs reassign $A 0"), $OK, "class A -> global pool again");
$stats = wait_stats($sock, undef, 10,
    sub { $_[0]{slabs_moved} == 2 && $_[0]{slab_reassign_running} == 0 });
is($stats->{slabs_moved}, 2, "second page moved");
is($stats->{slab_reassign_rescues}, $per, "nothing more to rescue");
is($stats->{slab_global_page_pool}, 2, "two pages in the pool");
is(mem_stats($sock, "slabs")->{"$A:total_pages"}, 1, "class A keeps its last page");
is(cmd($sock, "slabs reassign $A 0"), $NOSPARE, "a class gives up its last page to nobody");

# The pool is a source like any class once it has two pages.
is(cmd($sock, "slabs reassign 0 $A"), $OK, "global pool -> class A");
$stats = wait_stats($sock, undef, 10,
    sub { $_[0]{slabs_moved} == 3 && $_[0]{slab_reassign_running} == 0 });
is($stats->{slabs_moved}, 3, "page moved out of the pool");
is($stats->{slab_global_page_pool}, 1, "one page left in the pool");
$slabs = mem_stats($sock, "slabs");
is($slabs->{"$A:total_pages"}, 2, "class A has 2 pages again");
is($slabs->{"$A:free_chunks"}, 2 * $per, "both free");
is(cmd($sock, "slabs reassign 0 $A"), $NOSPARE, "the pool's last page stays");

# "-1": any class with a spare page other than the destination.
is(cmd($sock, "slabs reassign -1 $A"), $BADCLASS, "the only candidate is the destination");
is(cmd($sock, "slabs reassign -1 0"), $OK, "any class -> pool");
$stats = wait_stats($sock, undef, 10,
    sub { $_[0]{slabs_moved} == 4 && $_[0]{slab_reassign_running} == 0 });
is($stats->{slabs_moved}, 4, "page moved");
is($stats->{slab_global_page_pool}, 2, "into the pool");
is(mem_stats($sock, "slabs")->{"$A:total_pages"}, 1, "taken from class A");

# -------------------------------------------------------------------------------------------
# A page move that cannot finish: the first item of the page to move is kept locked.
# Class A refills its free page first (keys b1.. land in slab_list[0]), then two pool pages.

@pairs = map { ["b$_", value_for("b$_", $VLEN - $_ % 5)] } 1 .. 3 * $per;
$want{$_->[0]} = $_->[1] for @pairs;
is(store_all($sock, \@pairs), scalar(@pairs), "refilled class A");
$stats = mem_stats($sock);
is($stats->{slab_global_page_pool}, 0, "the pool pages went to class A");
is(mem_stats($sock, "slabs")->{"$A:total_pages"}, 3, "class A has 3 pages");
@last = map { "b$_" } 2 * $per + 1 .. 3 * $per;
is(delete_all($sock, @last), $per, "emptied the last page again");
delete @want{@last};

my $before = mem_stats($sock);
is(cmd($sock, "debugitem lock b1"), $OK, "locked b1");
is(cmd($sock, "slabs reassign $A 0"), $OK, "move started");
$stats = wait_stats($sock, undef, 10, sub {
    $_[0]{slab_reassign_running} == 1
        && $_[0]{slab_reassign_busy_items} > $before->{slab_reassign_busy_items}
        && $_[0]{slab_reassign_last_busy_status} eq "locked";
});
is($stats->{slab_reassign_running}, 1, "mover stuck running");
cmp_ok($stats->{slab_reassign_busy_items}, '>', $before->{slab_reassign_busy_items},
    "busy items counted");
is($stats->{slab_reassign_last_busy_status}, "locked", "busy on a locked item");
is($stats->{slabs_moved}, $before->{slabs_moved}, "the page has not moved");

# While it runs, every well-formed request gets BUSY, whatever the classes.
is(cmd($sock, "slabs reassign $A 0"), $BUSY, "same move again: BUSY");
is(cmd($sock, "slabs reassign 1 1"), $BUSY, "SAME is not checked: BUSY");
is(cmd($sock, "slabs reassign -5 70"), $BUSY, "BADCLASS is not checked: BUSY");
is(cmd($sock, "slabs reassign -1 0"), $BUSY, "any class: BUSY");
is(cmd($sock, "slabs reassign x 0"), $BADLINE, "bad numbers still rejected");
is(cmd($sock, "slabs reassign 1"), "ERROR\r\n", "too few tokens still ERROR");
my $busy_then = mem_stats($sock)->{slab_reassign_busy_items};
$stats = wait_stats($sock, undef, 10, sub { $_[0]{slab_reassign_busy_items} > $busy_then });
cmp_ok($stats->{slab_reassign_busy_items}, '>', $busy_then, "mover keeps retrying");
is($stats->{slabs_moved}, $before->{slabs_moved}, "still no page moved");

is(cmd($sock, "debugitem unlock b1"), $OK, "unlocked b1");
$stats = wait_stats($sock, undef, 10, sub {
    $_[0]{slabs_moved} == $before->{slabs_moved} + 1 && $_[0]{slab_reassign_running} == 0;
});
is($stats->{slabs_moved}, $before->{slabs_moved} + 1, "page moved once unlocked");
is($stats->{slab_reassign_running}, 0, "mover idle");
is($stats->{slab_reassign_rescues}, $before->{slab_reassign_rescues} + $per,
    "the whole page was rescued, b1 included");
is($stats->{evictions}, 0, "still nothing evicted");
is($stats->{slab_global_page_pool}, 1, "page in the pool");
is(mem_stats($sock, "slabs")->{"$A:total_pages"}, 2, "class A is down to 2 pages");
is_deeply([wrong_values($sock, \%want)], [], "every item reads back intact");
is(cmd($sock, "slabs reassign $A 0"), $OK, "and the mover takes requests again");
$stats = wait_stats($sock, undef, 10, sub {
    $_[0]{slabs_moved} == $before->{slabs_moved} + 2 && $_[0]{slab_reassign_running} == 0;
});
is($stats->{slabs_moved}, $before->{slabs_moved} + 2, "another page moved");

# -------------------------------------------------------------------------------------------
# Page moves between two item classes: a page of class A becomes a page of class B.

{
    my $srv = new_memcached("-m 12 -o slab_automove=0");
    my $s = $srv->sock;
    my $small = 2000;
    is(store_all($s, [["s1", value_for("s1", $small)]]), 1, "one item of class B");
    my ($B) = classes_with_pages(mem_stats($s, "slabs"));
    my @big = map { ["c$_", value_for("c$_", $VLEN)] } 1 .. 2 * $per;
    is(store_all($s, \@big), scalar(@big), "two pages of class A");
    my $sl = mem_stats($s, "slabs");
    my ($A2) = grep { $_ != $B } classes_with_pages($sl);
    is($A2, $A, "same class A as before");
    is($sl->{"$A:total_pages"}, 2, "class A has 2 pages");
    is($sl->{"$B:total_pages"}, 1, "class B has 1");
    my $bper = $sl->{"$B:chunks_per_page"};
    is(delete_all($s, map { "c$_" } $per + 1 .. 2 * $per), $per, "emptied class A's second page");

    is(cmd($s, "slabs reassign $A $B"), $OK, "class A -> class B");
    my $st = wait_stats($s, undef, 10,
        sub { $_[0]{slabs_moved} == 1 && $_[0]{slab_reassign_running} == 0 });
    is($st->{slabs_moved}, 1, "moved");
    is($st->{slab_reassign_rescues}, $per, "the first page's items were rescued");
    is($st->{slab_reassign_inline_reclaim}, 0, "no inline reclaim");
    is($st->{evictions}, 0, "nothing evicted");
    is($st->{slab_global_page_pool}, 0, "the pool is not involved");
    $sl = mem_stats($s, "slabs");
    is($sl->{"$A:total_pages"}, 1, "class A lost a page");
    is($sl->{"$A:used_chunks"}, $per, "its items are all in the page left");
    is($sl->{"$B:total_pages"}, 2, "class B gained it");
    is($sl->{"$B:free_chunks"}, 2 * $bper - 1, "cut into class B's chunks, all free");
    is($sl->{total_malloced}, 3 * 1024 * 1024, "no memory allocated or freed");

    # Class B fills the moved page without asking for new memory.
    my @smalls = map { ["s$_", value_for("s$_", $small)] } 2 .. 2 * $bper;
    is(store_all($s, \@smalls), scalar(@smalls), "filled class B's two pages");
    $sl = mem_stats($s, "slabs");
    is($sl->{"$B:total_pages"}, 2, "still 2 pages in class B");
    is($sl->{total_malloced}, 3 * 1024 * 1024, "still 3 pages allocated");
    my %w = map { @$_ } ["s1", value_for("s1", $small)], @smalls,
        map { ["c$_", value_for("c$_", $VLEN)] } 1 .. $per;
    is_deeply([wrong_values($s, \%w)], [], "both classes read back intact");
}

# -------------------------------------------------------------------------------------------
# An item of the page that is held by a reference (`debugitem ref`): the mover copies it out
# at once (the key now names the copy) but cannot reuse its old memory until the reference
# goes (`debugitem unref reffed`, same connection); meanwhile the old copy floats.

{
    my $srv = new_memcached("-m 12 -o slab_automove=0");
    my $s = $srv->sock;
    my $other = $srv->new_sock;
    my %w = map { ("r$_" => value_for("r$_", $VLEN - $_ % 3)) } 1 .. 3 * $per;
    is(store_all($s, [map { [$_, $w{$_}] } map { "r$_" } 1 .. 3 * $per]), 3 * $per,
        "three pages of class A");
    # The copy made for r1 uses a free chunk and the old one is not free yet: a few more
    # free chunks than the page has items keep the waiting mover from evicting for room.
    my @drop = map { "r$_" } $per + 1 .. $per + 5, 2 * $per + 1 .. 3 * $per;
    is(delete_all($s, @drop), $per + 5, "emptied the last page and a bit");
    delete @w{@drop};

    is(cmd($s, "debugitem ref r1"), $OK, "took a reference to r1");
    is(cmd($s, "debugitem ref nosuchkey"), "MISS\r\n", "no reference to a missing key");
    is(cmd($s, "slabs reassign $A 0"), $OK, "move started");
    my $st = wait_stats($other, undef, 10, sub {
        $_[0]{slab_reassign_running} == 1 && $_[0]{slab_reassign_last_busy_status} eq "busy_floating";
    });
    is($st->{slab_reassign_running}, 1, "mover waiting");
    is($st->{slab_reassign_last_busy_status}, "busy_floating", "on the old copy of r1");
    is($st->{slabs_moved}, 0, "page not moved yet");
    is(cmd($other, "slabs reassign 1 2"), $BUSY, "BUSY meanwhile");
    mem_get_is($other, "r1", $w{r1}, "r1 reads from its new copy");

    is(cmd($s, "debugitem unref reffed"), $OK, "reference dropped");
    $st = wait_stats($other, undef, 10,
        sub { $_[0]{slabs_moved} == 1 && $_[0]{slab_reassign_running} == 0 });
    is($st->{slabs_moved}, 1, "page moved");
    is($st->{slab_reassign_rescues}, $per, "every item rescued once, r1 included");
    is($st->{evictions}, 0, "nothing evicted");
    is($st->{curr_items}, 2 * $per - 5, "no item lost or duplicated");
    is_deeply([wrong_values($other, \%w)], [], "every item reads back intact");
}

# -------------------------------------------------------------------------------------------
# All memory in use and no free chunk in the source class: the mover evicts to make room,
# finds the freed chunks inside the very page it empties (inline reclaim), and meets live
# items while it has nowhere to put them (busy_nomem). The page still moves.

{
    my $srv = new_memcached("-m 12 -o slab_automove=0");
    my $s = $srv->sock;
    my %w;
    my $i = 0;
    while ($i < 2000) {
        $i++;
        my $v = value_for("f$i", $VLEN);
        last unless store_all($s, [["f$i", $v]]);
        $w{"f$i"} = $v;
        last if mem_stats($s)->{evictions} > 0;
    }
    my $ev = mem_stats($s)->{evictions};
    cmp_ok($ev, '>', 0, "class A filled memory and began to evict");
    $i = 0;
    while ($i < 5000) {
        $i++;
        my $v = value_for("g$i", 2000);
        last unless store_all($s, [["g$i", $v]]);
        $w{"g$i"} = $v;
        last if mem_stats($s)->{evictions} > $ev;
    }
    my $sl = mem_stats($s, "slabs");
    my @cls = classes_with_pages($sl);
    is(scalar(@cls), 2, "two classes");
    my ($B, $A2) = @cls;
    is($A2, $A, "the big one is class A");
    my $apages = $sl->{"$A:total_pages"};
    my $bpages = $sl->{"$B:total_pages"};
    is($sl->{"$A:free_chunks"}, 0, "no free chunk in class A");
    my $before = mem_stats($s);

    is(cmd($s, "slabs reassign $A $B"), $OK, "class A -> class B");
    my $st = wait_stats($s, undef, 10,
        sub { $_[0]{slabs_moved} == 1 && $_[0]{slab_reassign_running} == 0 });
    is($st->{slabs_moved}, 1, "page moved");
    cmp_ok($st->{evictions}, '>', $before->{evictions}, "by evicting");
    cmp_ok($st->{slab_reassign_inline_reclaim}, '>', 0, "freed chunks of the page reclaimed inline");
    cmp_ok($st->{slab_reassign_busy_nomem}, '>', 0, "live items met with no memory to move to");
    cmp_ok($st->{slab_reassign_busy_items}, '>=', $st->{slab_reassign_busy_nomem},
        "each counted as busy too");
    $sl = mem_stats($s, "slabs");
    is($sl->{"$A:total_pages"}, $apages - 1, "class A lost a page");
    is($sl->{"$B:total_pages"}, $bpages + 1, "class B gained it");

    my $got = fetch_all($s, sort keys %w);
    my @wrong = grep { defined $got->{$_} && $got->{$_} ne $w{$_} } sort keys %w;
    my $missing = grep { !defined $got->{$_} } keys %w;
    is_deeply(\@wrong, [], "items still there are intact");
    is($missing, $st->{evictions}, "the missing ones are exactly the evicted ones");
}

# -------------------------------------------------------------------------------------------
# With -o no_slab_reassign the command is refused before its arguments are looked at, and
# the mover's counters are not in "stats".

{
    my $srv = new_memcached("-o no_slab_reassign");
    my $s = $srv->sock;
    my $disabled = "CLIENT_ERROR slab reassignment disabled\r\n";
    is(cmd($s, "slabs reassign 1 2"), $disabled, "disabled");
    is(cmd($s, "slabs reassign x y"), $disabled, "disabled before parsing");
    is(cmd($s, "slabs reassign 1 1"), $disabled, "disabled before SAME");
    is(cmd($s, "slabs reassign -1 0"), $disabled, "disabled for any class");
    is(cmd($s, "slabs reassign 1"), "ERROR\r\n", "wrong token count is still ERROR");
    is(cmd($s, "slabs reassign 1 2 3"), "ERROR\r\n", "too many tokens is still ERROR");
    my $st = mem_stats($s);
    ok(!exists $st->{$_}, "no $_ in stats")
        for qw(slabs_moved slab_reassign_running slab_reassign_rescues
               slab_reassign_last_busy_status slab_reassign_busy_items);
    ok(exists $st->{slab_global_page_pool}, "slab_global_page_pool is always there");
    is(mem_stats($s, "settings")->{slab_reassign}, "no", "settings say no");
}

done_testing();
