#!/usr/bin/env perl
# Binary pipelining, as C memcached 1.6.45 does it: long batches of quiet
# commands answered only by their errors and hits, in request order, with a
# noop flushing the batch; quiet hits are sent even without a noop; large
# batches of plain gets; large values in a pipeline; a large set sent in
# pieces.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use MemcachedBinary;

my $server = new_memcached('-B binary');
my $sock = $server->sock;

# Writes $bytes completely (large batches need several writes).
sub send_all {
    my ($s, $bytes) = @_;
    my $sel = IO::Select->new($s);
    while (length $bytes) {
        $sel->can_write(5) or last;
        my $n = syswrite($s, $bytes);
        last unless defined $n;
        substr($bytes, 0, $n, '');
    }
}

# The packets answering $bytes (a noop fence is appended), read while sending.
sub batch {
    my ($s, $bytes) = @_;
    $bytes .= req(op => OP_NOOP, opaque => FENCE_OPAQUE);
    my ($in, @got) = ('');
    my $sel = IO::Select->new($s);
    while (1) {
        if (length $bytes) {
            my ($r, $w) = IO::Select->select($sel, $sel, undef, 5);
            last unless $r || $w;
            if ($w && @$w) {
                my $n = syswrite($s, $bytes, 65536);
                substr($bytes, 0, $n, '') if $n;
            }
            next unless $r && @$r;
        } else {
            last unless $sel->can_read(5);
        }
        my $n = sysread($s, my $chunk, 1 << 20);
        last unless $n;
        $in .= $chunk;
        while (length($in) >= 24) {
            my $bodylen = unpack('x8 N', $in);
            last if length($in) < 24 + $bodylen;
            my $raw = substr($in, 0, 24 + $bodylen, '');
            my %p;
            @p{qw(magic op keylen extlen datatype status bodylen opaque cas)} = unpack('CCnCCnNNQ>', $raw);
            return @got if $p{op} == OP_NOOP && $p{opaque} == FENCE_OPAQUE;
            $p{extras} = substr($raw, 24, $p{extlen});
            $p{key} = substr($raw, 24 + $p{extlen}, $p{keylen});
            $p{value} = substr($raw, 24 + $p{extlen} + $p{keylen});
            push(@got, \%p);
        }
    }
    push(@got, { error => 'timeout', raw => '' });
    return @got;
}

# --- quiet stores: only the noop answers ----------------------------------------------
my $bytes = join('', map { set_req(OP_SETQ, "key$_", "value$_", flags => $_, opaque => $_) } 1 .. 500);
is(scalar(batch($sock, $bytes)), 0, '500 setq then noop: only the noop is answered');

# --- quiet gets: only the hits, in order ----------------------------------------------------
$bytes = join('', map { req(op => OP_GETKQ, key => ($_ % 2 ? "key$_" : "miss$_"), opaque => $_) } 1 .. 500);
my @got = batch($sock, $bytes);
is(scalar(@got), 250, '500 getkq, half of them misses: 250 replies');
my @bad = grep { my $i = 2 * $_ + 1; my $p = $got[$_];
    !$p || $p->{op} != OP_GETKQ || $p->{opaque} != $i || $p->{key} ne "key$i" || $p->{value} ne "value$i"
    || $p->{extras} ne pack('N', $i) || $p->{status} != 0 } 0 .. 249;
is(scalar(@bad), 0, 'the hits in request order, each with its opaque, key, flags and value');

# --- every quiet opcode, successes and failures mixed ---------------------------------------------
@got = batch($sock,
    req(op => OP_GETQ, key => 'key1', opaque => 1)            # hit: sent
    . req(op => OP_GETQ, key => 'nope', opaque => 2)          # miss: silent
    . set_req(OP_SETQ, 'p1', '5', opaque => 3)                # silent
    . set_req(OP_ADDQ, 'p1', 'x', opaque => 4)                # EEXISTS
    . set_req(OP_ADDQ, 'p2', 'x', opaque => 5)                # silent
    . set_req(OP_REPLACEQ, 'nope', 'x', opaque => 6)          # ENOENT
    . set_req(OP_REPLACEQ, 'p2', 'y', opaque => 7)            # silent
    . req(op => OP_APPENDQ, key => 'p2', value => 'z', opaque => 8)   # silent
    . req(op => OP_PREPENDQ, key => 'nope', value => 'z', opaque => 9) # NOT_STORED
    . arith_req(OP_INCRQ, 'p1', 1, 0, 0, opaque => 10)        # silent
    . arith_req(OP_DECRQ, 'p2', 1, 0, 0, opaque => 11)        # DELTA_BADVAL
    . arith_req(OP_INCRQ, 'nope', 1, 0, 0xffffffff, opaque => 12) # ENOENT
    . req(op => OP_DELETEQ, key => 'nope', opaque => 13)      # ENOENT
    . req(op => OP_GATQ, key => 'p1', extras => pack('N', 0), opaque => 14)  # hit: sent
    . req(op => OP_GATKQ, key => 'nope', extras => pack('N', 0), opaque => 15) # miss: silent
    . req(op => OP_GETKQ, key => 'p2', opaque => 16)          # hit: sent
    . req(op => OP_DELETEQ, key => 'p2', opaque => 17)        # silent
    . req(op => OP_GET, key => 'p2', opaque => 18)            # miss, not quiet
    . req(op => OP_FLUSHQ, opaque => 19)                      # silent
    . req(op => OP_GETQ, key => 'p1', opaque => 20));         # flushed: silent
my $want = [
    res(op => OP_GETQ, opaque => 1, cas => 'set', extras => pack('N', 1), value => 'value1'),
    err_res(OP_ADDQ, ST_EEXISTS, opaque => 4),
    err_res(OP_REPLACEQ, ST_ENOENT, opaque => 6),
    err_res(OP_PREPENDQ, ST_NOT_STORED, opaque => 9),
    err_res(OP_DECRQ, ST_DELTA_BADVAL, opaque => 11),
    err_res(OP_INCRQ, ST_ENOENT, opaque => 12),
    err_res(OP_DELETEQ, ST_ENOENT, opaque => 13),
    res(op => OP_GATQ, opaque => 14, cas => 'set', extras => pack('N', 0), value => '6'),
    res(op => OP_GETKQ, opaque => 16, cas => 'set', extras => pack('N', 0), key => 'p2', value => 'yz'),
    err_res(OP_GET, ST_ENOENT, opaque => 18),
];
is(show($want, @got), show($want, @$want), 'a mixed quiet batch: hits and errors only, in order');

# --- a quiet hit is sent without waiting for a noop -----------------------------------------------------
exchange($sock, set_req(OP_SET, 'alone', 'v'));
syswrite($sock, req(op => OP_GETKQ, key => 'alone', opaque => 5));
my $p = read_packet($sock, 3);
ok($p->{cas}, 'the lone hit has a CAS');
is(show(undef, $p), show(undef, res(op => OP_GETKQ, opaque => 5, cas => $p->{cas}, extras => pack('N', 0), key => 'alone', value => 'v')),
    'a lone getkq hit is answered once the input is drained');
exchange_is($sock, '', [], 'nothing else pending');

# --- plain gets, many at once ------------------------------------------------------------------------------
exchange($sock, join('', map { set_req(OP_SETQ, "g$_", "v$_") } 1 .. 200));
@got = batch($sock, join('', map { req(op => OP_GET, key => "g" . (($_ % 200) + 1), opaque => $_) } 1 .. 2000));
is(scalar(@got), 2000, '2000 pipelined gets: 2000 replies');
@bad = grep { my $p = $got[$_ - 1];
    !$p || $p->{opaque} != $_ || $p->{value} ne 'v' . (($_ % 200) + 1) || $p->{status} != 0 } 1 .. 2000;
is(scalar(@bad), 0, 'in order, with the right values');

# --- large values in a pipeline ---------------------------------------------------------------------------------
my %big = map { ("big$_" => chr(0x40 + $_) x (100000 * $_ + 17)) } 1 .. 5;
@got = batch($sock, join('', map { set_req(OP_SET, $_, $big{$_}, opaque => 1) } sort keys %big));
is(join(',', map { $_->{status} } @got), '0,0,0,0,0', 'five sets of 100 kB to 500 kB values');
@got = batch($sock, join('', map { req(op => OP_GETK, key => $_) . req(op => OP_GETKQ, key => 'nope') } sort keys %big));
is(join(',', map { "$_->{key}:" . length($_->{value}) } @got),
    join(',', map { "$_:" . length($big{$_}) } sort keys %big), 'read back in one pipeline');
is(scalar(grep { $_->{value} ne ($big{$_->{key}} // '') } @got), 0, 'with the right contents');

# --- a large set trickling in -----------------------------------------------------------------------------------------
{
    my $value = join('', map { chr(($_ * 7) % 256) } 1 .. 300000);
    my $req = set_req(OP_SET, 'trickle', $value, flags => 99, opaque => 77);
    my $s = $server->new_sock;
    while (length $req) {
        send_all($s, substr($req, 0, 50000, ''));
        MemcachedTest::sleep(0.02);
    }
    my $p = read_packet($s);
    is(show(undef, $p), show(undef, res(op => OP_SET, opaque => 77, cas => $p->{cas})), 'a 300 kB set sent in 50 kB pieces');
    exchange_is($s, req(op => OP_GET, key => 'trickle'),
        [res(op => OP_GET, cas => $p->{cas}, extras => pack('N', 99), value => $value)], 'and stored intact');
}

done_testing();
