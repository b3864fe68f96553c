#!/usr/bin/env perl
# Items survive page moves: a class filled over several pages with values that differ from
# key to key, a third of them deleted, then its pages moved away one by one (to the global
# pool and to another class) while a second connection keeps reading. Every item not
# evicted must come back with its value, flags and CAS unchanged; the deleted ones must stay
# gone; the missing ones must be exactly as many as the evictions. Then the same with chunked
# items (values above slab_chunk_max), whose chunks are rescued one by one.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

sub cmd {
    my ($sock, $line) = @_;
    print $sock "$line\r\n";
    my $reply = <$sock>;
    return $reply;
}

sub wait_stats {
    my ($sock, $type, $secs, $done) = @_;
    my $deadline = time() + $secs;
    while (1) {
        my $s = mem_stats($sock, $type);
        return $s if $done->($s) || time() > $deadline;
        MemcachedTest::sleep(0.05);
    }
}

# A value of $len bytes that is different for every key and every position.
sub value_for {
    my ($key, $len) = @_;
    my $v = '';
    my $n = 0;
    $v .= sprintf("%s.%d;", $key, $n++) while length($v) < $len;
    return substr($v, 0, $len);
}

# Stores [key, flags, value] triples, pipelined; returns how many got STORED.
sub store_all {
    my ($sock, $items) = @_;
    my $stored = 0;
    my @todo = @$items;
    while (my @batch = splice(@todo, 0, 30)) {
        print $sock "set $_->[0] $_->[1] 0 " . length($_->[2]) . "\r\n$_->[2]\r\n" for @batch;
        for (@batch) {
            my $r = <$sock>;
            $stored++ if defined $r && $r eq "STORED\r\n";
        }
    }
    return $stored;
}

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

# gets for many keys; returns { key => [flags, value, cas] } for the hits.
sub fetch_all {
    my ($sock, @keys) = @_;
    my %got;
    while (my @batch = splice(@keys, 0, 40)) {
        print $sock "gets @batch\r\n";
        while (defined(my $line = <$sock>)) {
            last if $line eq "END\r\n";
            my ($k, $flags, $len, $cas) = $line =~ /^VALUE (\S+) (\d+) (\d+) (\d+)\r\n$/
                or die "unexpected line in gets reply: $line";
            my $data = '';
            while (length($data) < $len + 2) {
                read($sock, $data, $len + 2 - length($data), length($data)) or last;
            }
            $got{$k} = [$flags, substr($data, 0, $len), $cas];
        }
    }
    return \%got;
}

# Compares the live keys with what the server has: returns (missing keys, wrong keys).
sub audit {
    my ($sock, $want) = @_;
    my $got = fetch_all($sock, sort keys %$want);
    my (@missing, @wrong);
    for my $k (sort keys %$want) {
        if (!$got->{$k}) {
            push(@missing, $k);
        } elsif (join("\0", @{ $got->{$k} }) ne join("\0", @{ $want->{$k} })) {
            push(@wrong, $k);
        }
    }
    return (\@missing, \@wrong);
}

sub classes_with_pages {
    my ($slabs) = @_;
    return sort { $a <=> $b } map { /^(\d+):total_pages$/ ? $1 : () } keys %$slabs;
}

# Asks for one page move and waits for it, reading items on a second connection meanwhile.
# Returns the stats after the move and the keys the reader saw with a wrong value.
sub move_page_while_reading {
    my ($sock, $reader, $src, $dst, $want, $what) = @_;
    my $before = mem_stats($sock)->{slabs_moved};
    is(cmd($sock, "slabs reassign $src $dst"), "OK\r\n", "$what: reassign $src $dst");
    my @keys = sort keys %$want;
    my $at = 0;
    my %bad;
    my $deadline = time() + 15;
    my $stats;
    while (1) {
        $stats = mem_stats($sock);
        last if $stats->{slabs_moved} > $before && $stats->{slab_reassign_running} == 0;
        last if time() > $deadline;
        # A batch of reads: a hit must be exact; a miss may be an eviction.
        my @batch = map { $keys[($at + $_) % @keys] } 0 .. 24;
        $at += 25;
        my $got = fetch_all($reader, @batch);
        for my $k (keys %$got) {
            $bad{$k} = 1 if join("\0", @{ $got->{$k} }) ne join("\0", @{ $want->{$k} });
        }
    }
    is($stats->{slabs_moved}, $before + 1, "$what: page moved");
    is($stats->{slab_reassign_running}, 0, "$what: mover idle");
    is_deeply([sort keys %bad], [], "$what: reads during the move were all exact");
    return $stats;
}

# The cas unique of every stored key, read back once after storing.
sub record_cas {
    my ($sock, $want) = @_;
    my $got = fetch_all($sock, keys %$want);
    for my $k (keys %$want) {
        return 0 unless $got->{$k} && $got->{$k}[1] eq $want->{$k}[1];
        $want->{$k}[2] = $got->{$k}[2];
    }
    return 1;
}

# -------------------------------------------------------------------------------------------
# Plain items: values of 4700..5499 bytes all share one class (5680-byte chunks).

{
    my $server = new_memcached("-m 12 -o slab_automove=0");
    my $sock = $server->sock;
    my $reader = $server->new_sock;

    my @items = map { ["p$_", $_, value_for("p$_", 4700 + ($_ * 37) % 800)] } 1 .. 10;
    is(store_all($sock, \@items), 10, "first items stored");
    my ($A) = classes_with_pages(mem_stats($sock, "slabs"));
    my $per = mem_stats($sock, "slabs")->{"$A:chunks_per_page"};
    my $n = 6 * $per;
    my @rest = map { ["p$_", $_, value_for("p$_", 4700 + ($_ * 37) % 800)] } 11 .. $n;
    is(store_all($sock, \@rest), scalar(@rest), "class $A filled: $n items");
    push(@items, @rest);
    my $slabs = mem_stats($sock, "slabs");
    is_deeply([classes_with_pages($slabs)], [$A], "all in one class");
    is($slabs->{"$A:total_pages"}, 6, "six pages");
    is($slabs->{"$A:free_chunks"}, 0, "all chunks used");

    my %want = map { $_->[0] => [$_->[1], $_->[2], undef] } @items;
    ok(record_cas($sock, \%want), "read every item back once, noting its cas");

    # A third of the items go, spread over every page.
    my @gone = map { "p$_" } grep { $_ % 3 == 0 } 1 .. $n;
    is(delete_all($sock, @gone), scalar(@gone), "deleted every third item");
    delete @want{@gone};
    is(mem_stats($sock, "slabs")->{"$A:free_chunks"}, scalar(@gone), "their chunks are free");

    # First move: there is more free room outside the first page than it has items.
    my $s = move_page_while_reading($sock, $reader, $A, 0, \%want, "move 1");
    is($s->{evictions}, 0, "move 1: no evictions");
    cmp_ok($s->{slab_reassign_rescues}, '>', 0, "move 1: items rescued");
    my ($missing, $wrong) = audit($sock, \%want);
    is(scalar(@$missing), 0, "move 1: nothing missing");
    is_deeply($wrong, [], "move 1: every item exact");

    # The next moves run out of free room and have to evict; alternate the destination
    # between the pool and class 1 (which has no pages of its own).
    my @dst = (1, 0, 1, 0);
    for my $i (0 .. $#dst) {
        $s = move_page_while_reading($sock, $reader, $A, $dst[$i], \%want, "move " . ($i + 2));
    }
    is(cmd($sock, "slabs reassign $A 0"), "NOSPARE source class has no spare pages\r\n",
        "class $A is down to its last page");
    $slabs = mem_stats($sock, "slabs");
    is($slabs->{"$A:total_pages"}, 1, "one page left in class $A");
    is($slabs->{"1:total_pages"}, 2, "class 1 got two pages");
    is($s->{slab_global_page_pool}, 3, "the pool got three");
    is($s->{slabs_moved}, 5, "five pages moved in all");

    ($missing, $wrong) = audit($sock, \%want);
    is_deeply($wrong, [], "every item still there is exact (value, flags, cas)");
    cmp_ok(scalar(@$missing), '>', 0, "some items had to go");
    $s = mem_stats($sock);
    is(scalar(@$missing), $s->{evictions} + $s->{slab_reassign_busy_deletes},
        "missing items: exactly the evicted ones");
    is($s->{curr_items}, scalar(keys %want) - scalar(@$missing), "curr_items agrees");
    is($slabs->{"$A:used_chunks"}, $s->{curr_items}, "all in the last page");
    my $back = fetch_all($sock, @gone);
    is(scalar(keys %$back), 0, "deleted items did not come back");

    # Class 1's pages can go back to class A, and the survivors are still intact.
    is(cmd($sock, "slabs reassign 1 $A"), "OK\r\n", "class 1 -> class $A");
    $s = wait_stats($sock, undef, 10,
        sub { $_[0]{slabs_moved} == 6 && $_[0]{slab_reassign_running} == 0 });
    is($s->{slabs_moved}, 6, "moved back");
    is(mem_stats($sock, "slabs")->{"$A:total_pages"}, 2, "class $A has two pages again");
    my ($missing2, $wrong2) = audit($sock, \%want);
    is_deeply($wrong2, [], "still exact");
    is(scalar(@$missing2), scalar(@$missing), "nothing more lost");
}

# -------------------------------------------------------------------------------------------
# Chunked items: with slab_chunk_max=16 (KB) a 30000-byte value is a header plus a 16 KB
# chunk from the largest class plus a smaller last chunk.

{
    my $server = new_memcached("-m 12 -o slab_automove=0,slab_chunk_max=16");
    my $sock = $server->sock;
    my $reader = $server->new_sock;
    is(mem_stats($sock, "settings")->{slab_chunk_max}, 16384, "16 KB chunks");

    my $n = 180;
    my @items = map { ["c$_", 1000 + $_, value_for("c$_", 30000 + $_ % 11)] } 1 .. $n;
    is(store_all($sock, \@items), $n, "stored $n chunked items");
    my $s = mem_stats($sock);
    is($s->{evictions}, 0, "no evictions while filling");
    my $slabs = mem_stats($sock, "slabs");
    my @cls = classes_with_pages($slabs);
    my $L = $cls[-1];
    is($slabs->{"$L:chunk_size"}, 16384, "largest class holds 16 KB chunks");
    cmp_ok($slabs->{"$L:total_pages"}, '>=', 3, "several pages of it");
    my %want = map { $_->[0] => [$_->[1], $_->[2], undef] } @items;
    ok(record_cas($sock, \%want), "read every item back once, noting its cas");

    my @gone = map { "c$_" } grep { $_ % 3 == 0 } 1 .. $n;
    is(delete_all($sock, @gone), scalar(@gone), "deleted every third item");
    delete @want{@gone};

    $s = move_page_while_reading($sock, $reader, $L, 0, \%want, "chunks move 1");
    is($s->{evictions}, 0, "chunks move 1: no evictions");
    cmp_ok($s->{slab_reassign_chunk_rescues}, '>', 0, "chunks move 1: chunks rescued");
    my ($missing, $wrong) = audit($sock, \%want);
    is(scalar(@$missing), 0, "chunks move 1: nothing missing");
    is_deeply($wrong, [], "chunks move 1: every item exact");

    # Then the class of the last chunks, and the largest class down to one page.
    my @more;
    for my $c (reverse @cls) {
        next if $c == $cls[0];    # the headers' class
        my $pages = mem_stats($sock, "slabs")->{"$c:total_pages"};
        push(@more, ($c) x ($pages - 1));
    }
    my $i = 2;
    for my $c (@more) {
        $s = move_page_while_reading($sock, $reader, $c, 0, \%want, "chunks move " . $i++);
    }
    $slabs = mem_stats($sock, "slabs");
    is($slabs->{"$_:total_pages"}, 1, "class $_ down to one page")
        for grep { $_ != $cls[0] } @cls;

    ($missing, $wrong) = audit($sock, \%want);
    is_deeply($wrong, [], "every chunked item still there is exact (value, flags, cas)");
    $s = mem_stats($sock);
    is(scalar(@$missing), $s->{evictions} + $s->{slab_reassign_busy_deletes},
        "missing items: exactly the evicted ones");
    is($s->{curr_items}, scalar(keys %want) - scalar(@$missing), "curr_items agrees");
    cmp_ok($s->{slab_reassign_chunk_rescues}, '>', 0, "chunk rescues counted");
    my $back = fetch_all($sock, @gone);
    is(scalar(keys %$back), 0, "deleted items did not come back");
}

# -------------------------------------------------------------------------------------------
# Expired items in the page being moved are dropped, not rescued (nor evicted).

{
    my $server = new_memcached("-m 12 -o slab_automove=0");
    my $sock = $server->sock;
    my @first = map { ["e$_", 7, value_for("e$_", 15000)] } 1 .. 5;
    # Store one item to learn the class, then the rest with a TTL of 100 s.
    print $sock "set e1 7 100 15000\r\n$first[0][2]\r\n";
    is(scalar <$sock>, "STORED\r\n", "stored e1 with a ttl");
    my ($A) = classes_with_pages(mem_stats($sock, "slabs"));
    my $per = mem_stats($sock, "slabs")->{"$A:chunks_per_page"};
    my $ok = 0;
    for my $i (2 .. $per) {
        my $v = value_for("e$i", 15000);
        print $sock "set e$i 7 100 15000\r\n$v\r\n";
        $ok++ if scalar(<$sock>) eq "STORED\r\n";
    }
    is($ok, $per - 1, "the first page holds items that expire in 100 s");
    my @items = map { ["k$_", $_, value_for("k$_", 15000 - $_ % 13)] } $per + 1 .. 3 * $per;
    is(store_all($sock, \@items), 2 * $per, "two more pages without a ttl");
    is(mem_stats($sock, "slabs")->{"$A:total_pages"}, 3, "three pages");
    my %want = map { $_->[0] => [$_->[1], $_->[2], undef] } @items;
    ok(record_cas($sock, \%want), "noted the cas of the lasting items");
    my @gone = map { "k$_" } 2 * $per + 1 .. 3 * $per;
    is(delete_all($sock, @gone), $per, "emptied the last page");
    delete @want{@gone};

    like(mem_move_time($sock, 200), qr/^OK/, "clock moved past the ttl");
    is(cmd($sock, "slabs reassign $A 0"), "OK\r\n", "first page -> pool");
    my $s = wait_stats($sock, undef, 10,
        sub { $_[0]{slabs_moved} == 1 && $_[0]{slab_reassign_running} == 0 });
    is($s->{slabs_moved}, 1, "page moved");
    is($s->{slab_reassign_rescues}, 0, "expired items are not rescued");
    is($s->{evictions}, 0, "nor evicted");
    is($s->{curr_items}, $per, "only the lasting items are counted");
    my $got = fetch_all($sock, map { "e$_" } 1 .. $per);
    is(scalar(keys %$got), 0, "the expired items are gone");
    my ($missing, $wrong) = audit($sock, \%want);
    is(scalar(@$missing), 0, "no lasting item missing");
    is_deeply($wrong, [], "every lasting item exact");
}

done_testing();
