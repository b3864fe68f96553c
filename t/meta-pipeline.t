#!/usr/bin/env perl
# Meta no-op (mn) and meta debug (me), and meta commands on the wire: quiet batches with mn as
# the barrier, meta and classic commands mixed on one connection, hundreds of commands in one
# write, and a quiet batch delivered split at every byte boundary, byte for byte as C 1.6.45.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

# Read until the reply ends with "MN\r\n" (or 5 s of silence); returns everything read.
sub read_to_mn {
    my ($sock) = @_;
    my $got = '';
    my $sel = IO::Select->new($sock);
    while ($got !~ /(?:^|\n)MN\r\n\z/) {
        last unless $sel->can_read(5);
        my $n = sysread($sock, my $buf, 65536);
        last unless $n;
        $got .= $buf;
    }
    return $got;
}

# Send $bytes followed by "mn\r\n" and return what the server wrote before "MN\r\n"
# (or what arrived before a 5 s silence, prefixed with "NO MN: ").
sub mq {
    my ($sock, $bytes) = @_;
    print $sock $bytes . "mn\r\n";
    my $got = read_to_mn($sock);
    return $got =~ s/MN\r\n\z//r if $got =~ /(?:^|\n)MN\r\n\z/;
    return "NO MN: $got";
}

my $server = new_memcached();
my $sock = $server->sock;
is(mq($sock, "debugtime p\r\n"), "OK\r\n", "pause the clock");

# --- mn ----------------------------------------------------------------------
print $sock "mn\r\n";
is(scalar <$sock>, "MN\r\n", "mn answers MN");
print $sock "mn q k O1 whatever\r\n";
is(scalar <$sock>, "MN\r\n", "mn ignores any arguments");
print $sock "mn \n";
is(scalar <$sock>, "MN\r\n", "mn with a bare \\n after a space");
print $sock "mn\n";
is(scalar <$sock>, "CLIENT_ERROR bad command line format\r\n",
    "\"mn\\n\" is shorter than the shortest command line C accepts");
print $sock "mnx\r\n";
is(scalar <$sock>, "ERROR\r\n", "mnx is not mn");

# --- me --------------------------------------------------------------------
is(mq($sock, "me a\r\n"), "EN\r\n", "me on a missing key");
is(mq($sock, "ms a 3 T100 F5\r\nabc\r\n"), "HD\r\n", "store a");
is(mq($sock, "me a\r\n"), "ME a exp=100 la=0 cas=2 fetch=no cls=1 size=67\r\n", "me fields");
is(mq($sock, "debugtime 7\r\n"), "OK\r\n", "clock moves 7 s");
is(mq($sock, "me a\r\n"), "ME a exp=93 la=7 cas=2 fetch=no cls=1 size=67\r\n", "7 s later; me does not bump");
is(mq($sock, "mg a v\r\nme a\r\n"), "VA 3\r\nabc\r\nME a exp=93 la=7 cas=2 fetch=yes cls=1 size=67\r\n",
    "fetched by mg");
is(mq($sock, "me a q k v\r\n"), "ME a exp=93 la=7 cas=2 fetch=yes cls=1 size=67\r\n", "me ignores flags");
is(mq($sock, "ms Zm9v 2 b\r\nhi\r\n"), "HD\r\n", "store foo under a base64 key");
is(mq($sock, "me foo\r\n"), "ME Zm9v exp=-1 la=0 cas=3 fetch=no cls=1 size=64\r\n",
    "a binary key is printed in base64");
is(mq($sock, "me Zm9v b\r\n"), "EN\r\n", "me decodes only when b is followed by another token");
is(mq($sock, "me Zm9v b x\r\n"), "ME Zm9v exp=-1 la=0 cas=3 fetch=no cls=1 size=64\r\n", "b with a further token");
is(mq($sock, "me Zm9 b x\r\n"), "CLIENT_ERROR bad command line format\r\n", "bad base64");
my $big = 'x' x 5000;
is(mq($sock, "ms big 5000\r\n$big\r\nme big\r\n"), "HD\r\nME big exp=-1 la=0 cas=4 fetch=no cls=19 size=5062\r\n",
    "a larger item");
is(mq($sock, "ms gone 1 T-1\r\n1\r\nme gone\r\n"), "HD\r\nEN\r\n", "expired items are misses");
is(mq($sock, "me " . ('k' x 250) . "\r\n"), "EN\r\n", "250 byte key");
is(mq($sock, "me " . ('k' x 251) . "\r\n"), "CLIENT_ERROR bad command line format\r\n", "251 byte key");
is(mq($sock, "me\r\n"), "CLIENT_ERROR bad command line format\r\n", "no key");

# --- quiet batches with mn as the barrier ---------------------------------------------
is(mq($sock, "ms q1 1 q\r\n1\r\nms q2 1 q\r\n2\r\nms q3 1 q\r\n3\r\n"), "", "quiet sets: nothing until MN");
is(mq($sock, "mg q1 v q k\r\nmg qx v q k\r\nmg q2 v q k\r\nmg qy v q k\r\nmg q3 v q k\r\n"),
    "VA 1 kq1\r\n1\r\nVA 1 kq2\r\n2\r\nVA 1 kq3\r\n3\r\n", "quiet gets: hits only");
is(mq($sock, "md q1 q\r\nmd qx q\r\nma q2 q\r\nma qx q\r\nms q3 1 q ME\r\n9\r\nmg qy q\r\n"),
    "NF\r\nNF\r\nNS\r\n", "quiet mutations: only failures");
is(mq($sock, "mg q1 v q O1\r\nmg q2 v q O2\r\nmg q3 v q O3\r\n"), "VA 1 O2\r\n3\r\nVA 1 O3\r\n3\r\n",
    "opaques tell the replies apart");
is(mq($sock, "mg q2 q z\r\nmg q3 q s\r\nms q4 1 q zz\r\n4\r\nmg q4 q\r\n"),
    "CLIENT_ERROR invalid flag\r\nHD s1\r\nCLIENT_ERROR invalid flag\r\n", "errors in a quiet batch are sent");

# --- meta and classic commands mixed ---------------------------------------------------
is(mq($sock, "set m 3 0 1\r\n5\r\nmg m v f\r\nget m\r\nms m 2 F4\r\n10\r\ngets m\r\n"
        . "incr m 5\r\nma m v\r\ndecr m 1\r\nma m MD v\r\nappend m 0 0 1\r\n0\r\nmg m v s\r\n"
        . "md m\r\ndelete m\r\nadd m 0 0 1\r\nx\r\nms m 1 ME\r\ny\r\ntouch m 100\r\nmg m t v\r\n"),
    "STORED\r\nVA 1 f3\r\n5\r\nVALUE m 3 1\r\n5\r\nEND\r\nHD\r\nVALUE m 4 2 12\r\n10\r\nEND\r\n"
        . "15\r\nVA 2\r\n16\r\n15\r\nVA 2\r\n14\r\nSTORED\r\nVA 3 s3\r\n140\r\n"
        . "HD\r\nNOT_FOUND\r\nSTORED\r\nNS\r\nTOUCHED\r\nVA 1 t100\r\nx\r\n",
    "classic and meta commands see each other's items");
is(mq($sock, "set n 0 0 1 noreply\r\n1\r\nms n 1 q\r\n2\r\nget n\r\n"), "VALUE n 0 1\r\n2\r\nEND\r\n",
    "noreply and q side by side");

# --- many commands in one write ---------------------------------------------------------
{
    my ($req, $want) = ('', '');
    for my $i (1 .. 200) {
        $req .= "ms p$i " . length($i) . " T0 F$i c\r\n$i\r\n";
        $want .= "HD c" . (21 + $i) . "\r\n";
    }
    is(mq($sock, $req), $want, "200 sets in one write");
    ($req, $want) = ('', '');
    for my $i (1 .. 200) {
        $req .= "mg p$i v f k O$i\r\nmg nope$i v k O$i\r\n";
        $want .= "VA " . length($i) . " f$i kp$i O$i\r\n$i\r\nEN knope$i O$i\r\n";
    }
    is(mq($sock, $req), $want, "400 gets in one write");
    ($req, $want) = ('', '');
    for my $i (1 .. 200) {
        $req .= "ma p$i D$i v\r\nmd p$i q\r\nmg p$i v q\r\n";
        $want .= "VA " . length($i * 2) . "\r\n" . ($i * 2) . "\r\n";
    }
    is(mq($sock, $req), $want, "600 mixed commands in one write");
}

# --- a quiet batch split at every byte ---------------------------------------------------
# Every store rewrites the same values, so the batch answers the same each time it runs.
my $batch = "ms sk 2 T0 q\r\nhi\r\nmg sk s v q\r\nmg nokey v q\r\nmd nokey q\r\n"
    . "ma nokey q O1\r\nmg sk k O2 f\r\nmn\r\n";
my $expect = "VA 2 s2\r\nhi\r\nNF\r\nNF O1\r\nHD ksk O2 f0\r\nMN\r\n";
print $sock $batch;
is(read_to_mn($sock), $expect, "the batch in one write (" . length($batch) . " bytes)");

my @bad;
for my $at (1 .. length($batch) - 1) {
    syswrite($sock, substr($batch, 0, $at));
    MemcachedTest::sleep(0.002);
    syswrite($sock, substr($batch, $at));
    my $got = read_to_mn($sock);
    push(@bad, "split at $at: $got") if $got ne $expect;
}
is(join('', @bad), '', "the batch in two writes, split at each of its " . (length($batch) - 1) . " inner points");

for my $byte (split(//, $batch)) {
    syswrite($sock, $byte);
    MemcachedTest::sleep(0.001);
}
is(read_to_mn($sock), $expect, "the batch one byte per write");

# The same on a fresh connection, so that the first command of a connection is split too.
@bad = ();
for my $at (1, 2, 3, 5, 13, 17) {
    my $s = $server->new_sock;
    syswrite($s, substr($batch, 0, $at));
    MemcachedTest::sleep(0.002);
    syswrite($s, substr($batch, $at));
    my $got = read_to_mn($s);
    push(@bad, "split at $at: $got") if $got ne $expect;
    close($s);
}
is(join('', @bad), '', "split batches on new connections");

is(mq($sock, "mg sk v\r\n"), "VA 2\r\nhi\r\n", "still in sync");

done_testing();
