#!/usr/bin/env perl
# Memory given back to the system: after cache_memlimit is lowered below what is allocated,
# pages moved to the global pool are freed until total_malloced is back under the limit; the
# rest wait in the pool (and are freed when the limit goes down again). Pages get there by
# `slabs reassign N 0`, and by the automover (slab_automove=1), which sends the pages of a
# class with much free room to the pool once all memory is allocated.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use constant MB => 1024 * 1024;

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

sub value_for {
    my ($key, $len) = @_;
    my $unit = "[$key]";
    return substr($unit x (int($len / length($unit)) + 1), 0, $len);
}

sub store_all {
    my ($sock, $pairs) = @_;
    my $stored = 0;
    my @todo = @$pairs;
    while (my @batch = splice(@todo, 0, 40)) {
        print $sock "set $_->[0] 0 0 " . length($_->[1]) . "\r\n$_->[1]\r\n" for @batch;
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

sub wrong_values {
    my ($sock, $want) = @_;
    my @keys = sort keys %$want;
    my %got;
    while (my @batch = splice(@keys, 0, 50)) {
        print $sock "get @batch\r\n";
        while (defined(my $line = <$sock>)) {
            last if $line eq "END\r\n";
            my ($k, $len) = $line =~ /^VALUE (\S+) \d+ (\d+)\r\n$/ or die "bad line: $line";
            my $data = '';
            while (length($data) < $len + 2) {
                read($sock, $data, $len + 2 - length($data), length($data)) or last;
            }
            $got{$k} = substr($data, 0, $len);
        }
    }
    return grep { !defined $got{$_} || $got{$_} ne $want->{$_} } sort keys %$want;
}

sub classes_with_pages {
    my ($slabs) = @_;
    return sort { $a <=> $b } map { /^(\d+):total_pages$/ ? $1 : () } keys %$slabs;
}

# Fills one class (~15 KB items) with twelve pages, lowers the limit to 10 MB, deletes the
# items of the first ten pages and returns (class, chunks per page, { key => value } of the
# items kept in the last two).
sub twelve_pages_two_kept {
    my ($sock) = @_;
    is(store_all($sock, [["k1", value_for("k1", 15000)]]), 1, "first item");
    my ($A) = classes_with_pages(mem_stats($sock, "slabs"));
    my $per = mem_stats($sock, "slabs")->{"$A:chunks_per_page"};
    my @pairs = map { ["k$_", value_for("k$_", 15000 - $_ % 9)] } 2 .. 12 * $per;
    is(store_all($sock, \@pairs), scalar(@pairs), "twelve pages of class $A filled");
    my $slabs = mem_stats($sock, "slabs");
    is($slabs->{"$A:total_pages"}, 12, "class $A has twelve pages");
    is($slabs->{total_malloced}, 12 * MB, "12 MB allocated");
    is(mem_stats($sock)->{evictions}, 0, "no evictions");

    is(cmd($sock, "cache_memlimit 10"), "OK\r\n", "limit lowered to 10 MB");
    my $s = mem_stats($sock);
    is($s->{limit_maxbytes}, 10 * MB, "limit_maxbytes follows");
    is(mem_stats($sock, "slabs")->{total_malloced}, 12 * MB,
        "nothing freed yet: no page is in the pool");

    my %keep = map { ("k$_" => value_for("k$_", 15000 - $_ % 9)) } 10 * $per + 1 .. 12 * $per;
    my @gone = map { "k$_" } 1 .. 10 * $per;
    is(delete_all($sock, @gone), scalar(@gone), "emptied the first ten pages");
    return ($A, $per, \%keep);
}

# -------------------------------------------------------------------------------------------
# By hand.

{
    my $server = new_memcached("-m 32 -o slab_automove=0");
    my $sock = $server->sock;
    my ($A, $per, $keep) = twelve_pages_two_kept($sock);

    # Nine of the ten empty pages: moving the last page with free chunks would make the mover
    # evict an item to get a chunk to work with.
    my @expect = (    # total_malloced, pool after each move
        [11, 0], [10, 0], [10, 1], [10, 2], [10, 3], [10, 4], [10, 5], [10, 6], [10, 7],
    );
    for my $i (0 .. $#expect) {
        my $n = $i + 1;
        is(cmd($sock, "slabs reassign $A 0"), "OK\r\n", "move $n started");
        my $s = wait_stats($sock, undef, 10,
            sub { $_[0]{slabs_moved} == $n && $_[0]{slab_reassign_running} == 0 });
        is($s->{slabs_moved}, $n, "move $n done");
        my $slabs = mem_stats($sock, "slabs");
        my ($mb, $pool) = @{ $expect[$i] };
        is($slabs->{total_malloced}, $mb * MB, "move $n: total_malloced $mb MB");
        is($s->{slab_global_page_pool}, $pool, "move $n: $pool pages in the pool");
        is($slabs->{"$A:total_pages"}, 12 - $n, "move $n: class $A has " . (12 - $n) . " pages");
    }
    my $s = mem_stats($sock);
    is($s->{evictions}, 0, "no evictions");
    is($s->{slab_reassign_rescues}, 0, "nothing needed rescuing");
    is_deeply([wrong_values($sock, $keep)], [], "kept items intact");

    # A lower limit frees pool pages at once; a higher one changes nothing.
    is(cmd($sock, "cache_memlimit 8"), "OK\r\n", "limit lowered to 8 MB");
    my $slabs = mem_stats($sock, "slabs");
    is($slabs->{total_malloced}, 8 * MB, "two pool pages freed");
    is(mem_stats($sock)->{slab_global_page_pool}, 5, "five left in the pool");
    is(cmd($sock, "cache_memlimit 64"), "OK\r\n", "limit raised to 64 MB");
    is(mem_stats($sock, "slabs")->{total_malloced}, 8 * MB, "nothing allocated by that");
    is(mem_stats($sock)->{slab_global_page_pool}, 5, "pool unchanged");

    # New pages come from the pool before new memory is allocated.
    my @small = map { ["s$_", value_for("s$_", 3000)] } 1 .. 200;
    is(store_all($sock, \@small), 200, "stored items of another class");
    $s = mem_stats($sock);
    is($s->{slab_global_page_pool}, 4, "they took a pool page");
    is(mem_stats($sock, "slabs")->{total_malloced}, 8 * MB, "no new memory");
    is_deeply([wrong_values($sock, { map { @$_ } @small })], [], "they read back");
}

# -------------------------------------------------------------------------------------------
# By the automover: with a short window it sends empty pages of class A to the pool as long
# as the class has more than two and a half pages of free chunks, once all memory is in use.
# Here that leaves class A with four pages (two of them full), whatever the timing:
# a page only goes while the class has more than 2.5 pages free, and two pages stay full.

{
    my $server = new_memcached("-m 32 -o slab_automove=1,slab_automove_window=3");
    my $sock = $server->sock;
    my ($A, $per, $keep) = twelve_pages_two_kept($sock);

    my $slabs = wait_stats($sock, "slabs", 25, sub {
        $_[0]{"$A:total_pages"} == 4 && $_[0]{total_malloced} == 10 * MB;
    });
    is($slabs->{"$A:total_pages"}, 4, "automover left class $A with four pages");
    is($slabs->{total_malloced}, 10 * MB, "memory back down to the limit");
    my $s = wait_stats($sock, undef, 5, sub { $_[0]{slab_reassign_running} == 0 });
    is($s->{slabs_moved}, 8, "eight pages moved");
    is($s->{slab_global_page_pool}, 6, "six of them wait in the pool");
    is($s->{evictions}, 0, "no evictions");
    is_deeply([wrong_values($sock, $keep)], [], "kept items intact");

    is(cmd($sock, "cache_memlimit 8"), "OK\r\n", "limit lowered to 8 MB");
    $slabs = mem_stats($sock, "slabs");
    is($slabs->{total_malloced}, 8 * MB, "two more pages freed");
    is(mem_stats($sock)->{slab_global_page_pool}, 4, "four left in the pool");
    is(cmd($sock, "slabs automove 0"), "OK\r\n", "automover off");
}

done_testing();
