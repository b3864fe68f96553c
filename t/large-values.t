#!/usr/bin/env perl
# Values larger than slab_chunk_max are stored as chunked items: every size up to -I works
# with get/gets/gat, append/prepend across chunk boundaries, the data-chunk check, and
# incr/decr refusing them; memory used lands in the same classes as C's.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached("-o slab_chunk_max=16 -I 1m");
my $sock = $server->sock;

sub pattern {
    my ($len, $seed) = @_;
    my $unit = join('', map { chr(65 + ($_ + $seed) % 26) } 0 .. 25);
    return substr($unit x (int($len / 26) + 1), 0, $len);
}

# Sizes around one and several chunks (16 KiB chunks, 48-byte chunk headers).
for my $len (16000, 16384 - 48 - 2, 16384 - 48, 16384, 16385, 32768 - 96, 32768, 100000,
             500000, 1024 * 1024 - 200) {
    my $v = pattern($len, $len % 7);
    print $sock "set big$len 7 0 $len\r\n$v\r\n";
    is(scalar <$sock>, "STORED\r\n", "stored $len bytes");
    mem_get_is({ sock => $sock, flags => 7 }, "big$len", $v, "got $len bytes back");
}

# Too large for -I.
{
    my $len = 1024 * 1024;
    my $v = 'x' x $len;
    print $sock "set toobig 0 0 $len\r\n$v\r\n";
    is(scalar <$sock>, "SERVER_ERROR object too large for cache\r\n", "1 MiB value refused");
    mem_get_is($sock, "toobig", undef);
}

# append / prepend on chunked values, with the join inside and across chunks.
{
    my $a = pattern(40000, 1);
    print $sock "set ap 0 0 40000\r\n$a\r\n";
    is(scalar <$sock>, "STORED\r\n", "stored 40000 bytes");
    my $b = pattern(30000, 2);
    print $sock "append ap 0 0 30000\r\n$b\r\n";
    is(scalar <$sock>, "STORED\r\n", "appended 30000 bytes");
    mem_get_is($sock, "ap", $a . $b, "append joined the values");
    print $sock "prepend ap 0 0 5\r\nstart\r\n";
    is(scalar <$sock>, "STORED\r\n", "prepended 5 bytes");
    mem_get_is($sock, "ap", "start" . $a . $b, "prepend joined the values");
    print $sock "set small 0 0 3\r\nabc\r\n";
    is(scalar <$sock>, "STORED\r\n", "stored a small value");
    my $b20 = substr($b, 0, 20000);
    print $sock "append small 0 0 20000\r\n$b20\r\n";
    is(scalar <$sock>, "STORED\r\n", "append makes a small value chunked");
    mem_get_is($sock, "small", "abc" . $b20, "the appended small value");
}

# gets / gat return the whole chunked value.
{
    my $v = pattern(70000, 3);
    print $sock "set g 3 0 70000\r\n$v\r\n";
    is(scalar <$sock>, "STORED\r\n", "stored 70000 bytes");
    print $sock "gat 100 g\r\n";
    my $hdr = <$sock>;
    is($hdr, "VALUE g 3 70000\r\n", "gat header");
    my $got = '';
    read($sock, $got, 70002);
    is($got, "$v\r\n", "gat value");
    is(scalar <$sock>, "END\r\n", "gat END");
}

# A bad data chunk on a chunked value: the same replies as for a small one. (C's debug
# build stops on an assertion here; its release build, run here, replies as tested.)
{
    (my $release = MemcachedTest::get_memcached_exe()) =~ s{memcached-debug\z}{memcached};
    my $srv = new_memcached("-o slab_chunk_max=16", undef, { exe => $release });
    my $c = $srv->sock;
    my $v = 'B' x 50000;
    print $c "set bad 0 0 50000\r\n${v}XY\r\nget bad\r\n";
    is(scalar <$c>, "CLIENT_ERROR bad data chunk\r\n", "bad data chunk");
    is(scalar <$c>, "CLIENT_ERROR bad command line format\r\n", "the tail is a bad line");
    is(scalar <$c>, "END\r\n", "nothing stored");
}

# incr/decr refuse chunked values.
{
    my $v = '1' x 20000;
    print $sock "set num 0 0 20000\r\n$v\r\nincr num 1\r\ndecr num 1\r\n";
    is(scalar <$sock>, "STORED\r\n", "stored a long number");
    is(scalar <$sock>, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
       "incr refuses a chunked value");
    is(scalar <$sock>, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
       "decr refuses a chunked value");
}

# Deleting and overwriting chunked items gives their chunks back: a loop of sets in a small
# cache keeps working.
{
    my $srv = new_memcached("-m 4 -o slab_chunk_max=16");
    my $c = $srv->sock;
    my $v = pattern(200000, 5);
    my $ok = 0;
    for my $i (1 .. 60) {
        print $c "set k$i 0 0 200000\r\n$v\r\n";
        $ok++ if scalar <$c> eq "STORED\r\n";
    }
    is($ok, 60, "60 x 200 KB into a 4 MB cache: every set stored (old ones evicted)");
    mem_get_is($c, "k60", $v, "the newest is intact");
    my $s = mem_stats($c);
    cmp_ok($s->{evictions}, '>', 0, "older values were evicted");
    for my $i (1 .. 60) {
        print $c "delete k$i\r\n";
        <$c>;
    }
    is(mem_stats($c)->{curr_items}, 0, "all gone");
    is(mem_stats($c)->{bytes}, 0, "no bytes left");
}

# Class accounting matches C: the header and the chunks come from different classes.
{
    my $srv = new_memcached("-o slab_chunk_max=16");
    my $c = $srv->sock;
    my $v = 'z' x 40000;
    print $c "set acct 0 0 40000\r\n$v\r\n";
    is(scalar <$c>, "STORED\r\n", "stored 40000 bytes");
    my $slabs = mem_stats($c, "slabs");
    my %used = map { /^(\d+):used_chunks$/ ? ($1 => $slabs->{$_}) : () } keys %$slabs;
    my @classes = sort { $a <=> $b } grep { $used{$_} } keys %used;
    is(scalar(@classes), 3, "three classes used: header, full chunks, last chunk");
    is($used{$classes[-1]}, 2, "two full-size chunks");
    my $items = mem_stats($c, "items");
    my @item_classes = map { /^items:(\d+):number$/ ? $1 : () } keys %$items;
    is_deeply(\@item_classes, [$classes[-1]], "the item is counted in the largest class");
}

done_testing();
