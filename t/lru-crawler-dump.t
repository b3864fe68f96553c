#!/usr/bin/env perl
# `lru_crawler metadump` and `mgdump`: per-class, all and hash-table walks, each line's
# layout, the terminators, the refusals (bad class, pipelining, -X, disabled crawler, busy),
# a dump much larger than the socket buffers read slowly, a client that leaves mid-dump, and
# the connection carrying on after a dump.

use strict;
use warnings;
use Socket qw(SOL_SOCKET SO_RCVBUF);

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

# Reads a dump to its terminator; returns the first line and the lines before the end.
sub read_dump {
    my ($sock, $end) = @_;
    my $first = <$sock>;
    my @lines;
    while (defined(my $l = <$sock>)) {
        return ($first, \@lines, $l) if $l eq $end;
        push @lines, $l;
    }
    return ($first, \@lines, undef);
}

my $server = new_memcached("-m 64 -o no_lru_maintainer");
my $c = $server->sock;

print $c "set plain 3 0 5\r\nhello\r\n";
is(scalar <$c>, "STORED\r\n", "plain");
print $c "set odd/key:1 0 1000 2\r\nhi\r\n";
is(scalar <$c>, "STORED\r\n", "a key that needs encoding, with a TTL");
print $c "ms YmluAQ== 2 b\r\nxy\r\n";
is(scalar <$c>, "HD\r\n", "a binary key, given in base64");
print $c "set short 0 1 1\r\nx\r\n";
is(scalar <$c>, "STORED\r\n", "an item about to expire");
print $c "set large 0 0 3000\r\n" . ("L" x 3000) . "\r\n";
is(scalar <$c>, "STORED\r\n", "an item of another class");
mem_get_is({ sock => $c, flags => 3 }, "plain", "hello");
MemcachedTest::sleep(2.2);

my $LINE = qr/^key=(\S+) exp=(-1|\d+) la=(\d+) cas=(\d+) fetch=(yes|no) cls=(\d+) size=(\d+) flags=(\d+) \n\z/;
my $now = time();

# metadump all: every live item once, the expired one left out.
{
    print $c "lru_crawler metadump all\r\n";
    my ($first, $lines, $end) = read_dump($c, "END\r\n");
    is($first, "OK\r\n", "metadump starts with OK");
    is($end, "END\r\n", "and ends with END");
    is(scalar(@$lines), 4, "four live items");
    my %by_key;
    for my $l (@$lines) {
        like($l, $LINE, "line layout, trailing space included");
        $by_key{$1} = [$2, $3, $4, $5, $6, $7, $8] if $l =~ $LINE;
    }
    ok(!exists $by_key{short}, "expired item left out");
    my $p = $by_key{plain};
    is($p->[0], -1, "no expiry: exp=-1");
    cmp_ok(abs($p->[1] - $now), '<', 10, "la is a unix time");
    is($p->[3], "yes", "fetched item");
    is($p->[4], 1, "class 1");
    is($p->[5], 48 + 5 + 1 + 7 + 8 + 4, "size is the item's total bytes");
    is($p->[6], 3, "client flags");
    my $o = $by_key{'odd%2Fkey%3A1'};
    ok($o, "key URI-encoded");
    cmp_ok(abs($o->[0] - ($now + 1000)), '<', 10, "exp is a unix time") if $o;
    is($o->[3], "no", "unfetched item") if $o;
    ok($by_key{'bin%01'}, "binary key shown URI-encoded");
    cmp_ok($by_key{large}[4], '>', 1, "large item in its own class");
    print $c "version\r\n";
    like(scalar <$c>, qr/^VERSION /, "connection back to normal after the dump");
}

# One class, and the hash-table walk.
{
    print $c "lru_crawler metadump 1\r\n";
    my ($first, $lines, $end) = read_dump($c, "END\r\n");
    is($end, "END\r\n", "class 1 dump ends");
    is(scalar(@$lines), 3, "only class 1's items");
    print $c "lru_crawler metadump hash\r\n";
    ($first, $lines, $end) = read_dump($c, "END\r\n");
    is($first, "OK\r\n", "hash walk starts with OK");
    is(join('', sort map { /^key=(\S+)/; "$1\n" } @$lines),
        "bin%01\nlarge\nodd%2Fkey%3A1\nplain\n", "hash walk finds every live item");
    print $c "lru_crawler metadump 1,2,3\r\n";
    ($first, $lines, $end) = read_dump($c, "END\r\n");
    is($end, "END\r\n", "several classes");
}

# mgdump: one mg line per key, binary keys in base64 with b.
for my $what ("all", "hash") {
    print $c "lru_crawler mgdump $what\r\n";
    my ($first, $lines, $end) = read_dump($c, "EN\r\n");
    is($first, "OK\r\n", "mgdump $what: OK");
    is($end, "EN\r\n", "mgdump $what: EN");
    is(join('', sort @$lines), "mg YmluAQ== b\r\nmg large\r\nmg odd/key:1\r\nmg plain\r\n",
        "mgdump $what lines");
}

# Refusals.
{
    my @cases = (
        ["lru_crawler metadump 99", "BADCLASS invalid class id"],
        ["lru_crawler metadump 0", "BADCLASS invalid class id"],
        ["lru_crawler metadump x", "BADCLASS invalid class id"],
        ["lru_crawler mgdump 1,64", "BADCLASS invalid class id"],
        ["lru_crawler metadump", "ERROR"],
        ["lru_crawler metadump all extra", "ERROR"],
    );
    for my $case (@cases) {
        is(mem_request($c, "$case->[0]\r\n", 1), "$case->[1]\r\n", $case->[0]);
    }
    # mg's reply waits in the queue (mn would flush it first).
    print $c "mg plain s\r\nlru_crawler metadump all\r\n";
    is(scalar <$c>, "HD s5\r\n", "pipelined mg answered");
    is(scalar <$c>, "ERROR cannot pipeline other commands before metadump\r\n",
        "metadump after a queued reply refused");
    print $c "mg plain s\r\nlru_crawler mgdump all\r\n";
    is(scalar <$c>, "HD s5\r\n", "pipelined mg answered");
    is(scalar <$c>, "ERROR cannot pipeline other commands before mgdump\r\n",
        "mgdump after a queued reply refused");
    # "m" alone is metadump's abbreviation.
    print $c "lru_crawler m 2\r\n";
    my ($first, $lines, $end) = read_dump($c, "END\r\n");
    is($end, "END\r\n", "abbreviated metadump");

    my $nx = new_memcached("-X");
    is(mem_request($nx->sock, "lru_crawler metadump all\r\n", 1), "ERROR metadump not allowed\r\n", "-X metadump");
    is(mem_request($nx->sock, "lru_crawler mgdump all\r\n", 1), "ERROR key dump not allowed\r\n", "-X mgdump");

    is(mem_request($c, "lru_crawler disable\r\n", 1), "OK\r\n", "crawler off");
    is(mem_request($c, "lru_crawler metadump all\r\n", 1), "CLIENT_ERROR lru crawler disabled\r\n", "metadump with the crawler off");
    is(mem_request($c, "lru_crawler mgdump all\r\n", 1), "CLIENT_ERROR lru crawler disabled\r\n", "mgdump with the crawler off");
    is(mem_request($c, "lru_crawler enable\r\n", 1), "OK\r\n", "crawler on");
}

# A second dump or crawl while one runs is refused. The crawler is slowed down (it sleeps a
# second every 1000 items, without its lock) so the question arrives mid-dump.
{
    my $bs = new_memcached("-o no_lru_maintainer");
    my $bc = $bs->sock;
    print $bc join('', map { "set b$_ 0 0 1 noreply\r\nv\r\n" } 1 .. 3000);
    is(mem_request($bc, "lru_crawler sleep 1000000\r\n", 1), "OK\r\n", "slow crawler");
    my $d = $bs->new_sock;
    print $d "lru_crawler metadump all\r\n";
    MemcachedTest::sleep(0.4);
    is(mem_request($bc, "lru_crawler metadump all\r\n", 1),
        "BUSY currently processing crawler request\r\n", "second dump refused while busy");
    is(mem_request($bc, "lru_crawler mgdump hash\r\n", 1),
        "BUSY currently processing crawler request\r\n", "hash dump refused while busy");
    is(mem_request($bc, "lru_crawler crawl all\r\n", 1),
        "BUSY currently processing crawler request\r\n", "crawl refused while busy");
    is(mem_request($bc, "lru_crawler sleep 0\r\n", 1), "OK\r\n", "full speed again");
    my ($first, $lines, $end) = read_dump($d, "END\r\n");
    is($first, "OK\r\n", "first dump");
    is(scalar(@$lines), 3000, "first dump complete");
}

# A dump far larger than the socket buffers, read slowly, and a second dump meanwhile.
{
    my $big = new_memcached("-m 256 -o no_lru_maintainer");
    my $bc = $big->sock;
    my $n = 30000;
    my $pad = "k" x 150;
    for my $chunk (0 .. 29) {
        print $bc join('', map { "set $pad$_ 0 0 1 noreply\r\nv\r\n" } ($chunk * 1000 + 1) .. ($chunk * 1000 + 1000));
    }
    is(mem_request($bc, "version\r\n", 1) =~ /^VERSION/ ? 1 : 0, 1, "$n items stored");

    my $slow = $big->new_sock;
    setsockopt($slow, SOL_SOCKET, SO_RCVBUF, 4096);
    print $slow "lru_crawler metadump all\r\n";
    is(scalar <$slow>, "OK\r\n", "big dump started");
    MemcachedTest::sleep(0.5);
    # (No other crawler command here: C's crawler keeps its lock while it waits for a
    # client to read, so such a command would wait too.)
    my $st = mem_stats($bc);
    is($st->{lru_crawler_running}, 1, "crawler still busy with the unread dump");
    my ($count, $bad, $end) = (0, 0, undef);
    while (defined(my $l = <$slow>)) {
        if ($l eq "END\r\n") { $end = $l; last }
        $count++;
        $bad++ unless $l =~ $LINE;
        MemcachedTest::sleep(0.0001) if $count % 5000 == 0;
    }
    is($end, "END\r\n", "big dump complete");
    is($count, $n, "every item once");
    is($bad, 0, "every line well formed");
    print $slow "version\r\n";
    like(scalar <$slow>, qr/^VERSION /, "dump connection usable again");

    # A client that leaves in the middle: the dump stops and the crawler is free again.
    my $quitter = $big->new_sock;
    setsockopt($quitter, SOL_SOCKET, SO_RCVBUF, 4096);
    print $quitter "lru_crawler mgdump hash\r\n";
    is(scalar <$quitter>, "OK\r\n", "another big dump");
    close($quitter);
    for (1 .. 100) {
        $st = mem_stats($bc);
        last if !$st->{lru_crawler_running};
        MemcachedTest::sleep(0.1);
    }
    is($st->{lru_crawler_running}, 0, "crawler idle after the client left");
    print $bc "lru_crawler mgdump hash\r\n";
    my ($first, $lines, $e) = read_dump($bc, "EN\r\n");
    is(scalar(@$lines), $n, "a new dump runs in full");
    cmp_ok(mem_stats($bc)->{lru_crawler_starts}, '>=', 3, "dumps count as crawler starts");
}

# A dump asked for right after the last one's terminator is never refused as busy: the
# crawler is idle before the client gets its connection back.
{
    my $bs = new_memcached("-o no_lru_maintainer");
    my $bc = $bs->sock;
    print $bc "set one 0 0 1\r\nx\r\n";
    is(scalar <$bc>, "STORED\r\n", "one item");
    my ($refused, $incomplete) = (0, 0);
    for my $i (1 .. 1000) {
        my ($cmd, $end) = $i % 2
            ? ("lru_crawler metadump 1", "END\r\n")
            : ("lru_crawler mgdump hash", "EN\r\n");
        print $bc "$cmd\r\n";
        my $first = <$bc>;
        # A refusal is the whole reply.
        if (!defined $first || $first ne "OK\r\n") {
            $refused++;
            next;
        }
        my $n = 0;
        while (defined(my $l = <$bc>)) {
            last if $l eq $end;
            $n++;
        }
        $incomplete++ unless $n == 1;
    }
    is($refused, 0, "back-to-back dumps never refused");
    is($incomplete, 0, "each back-to-back dump complete");
}

done_testing();
