#!/usr/bin/env perl
# Binary touch and get-and-touch (gat, gatq, gatk, gatkq), expiration times
# (relative, absolute, 0xffffffff), and flush/flushq with and without a delay
# or when disabled with -F, byte for byte as C memcached 1.6.45. The server
# clock is paused (debugtime over a text connection) so expirations are exact.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

# --- binary protocol helpers ----------------------------------------------
# Header (24 bytes, network order): magic, opcode, key length, extras length,
# data type, vbucket (request) / status (response), total body length,
# opaque, CAS. Body: extras, then key, then value.

use constant {
    OP_GET => 0x00, OP_SET => 0x01, OP_ADD => 0x02, OP_REPLACE => 0x03,
    OP_DELETE => 0x04, OP_INCR => 0x05, OP_DECR => 0x06, OP_QUIT => 0x07,
    OP_FLUSH => 0x08, OP_GETQ => 0x09, OP_NOOP => 0x0a, OP_VERSION => 0x0b,
    OP_GETK => 0x0c, OP_GETKQ => 0x0d, OP_APPEND => 0x0e, OP_PREPEND => 0x0f,
    OP_STAT => 0x10, OP_SETQ => 0x11, OP_ADDQ => 0x12, OP_REPLACEQ => 0x13,
    OP_DELETEQ => 0x14, OP_INCRQ => 0x15, OP_DECRQ => 0x16, OP_QUITQ => 0x17,
    OP_FLUSHQ => 0x18, OP_APPENDQ => 0x19, OP_PREPENDQ => 0x1a,
    OP_VERBOSITY => 0x1b, OP_TOUCH => 0x1c, OP_GAT => 0x1d, OP_GATQ => 0x1e,
    OP_SASL_LIST => 0x20, OP_SASL_AUTH => 0x21, OP_SASL_STEP => 0x22,
    OP_GATK => 0x23, OP_GATKQ => 0x24,
};
use constant {
    ST_OK => 0x00, ST_ENOENT => 0x01, ST_EEXISTS => 0x02, ST_E2BIG => 0x03,
    ST_EINVAL => 0x04, ST_NOT_STORED => 0x05, ST_DELTA_BADVAL => 0x06,
    ST_AUTH_ERROR => 0x20, ST_UNKNOWN => 0x81, ST_ENOMEM => 0x82,
};
# Error bodies C writes for each status.
my %ERRTEXT = (
    ST_ENOENT() => 'Not found', ST_EEXISTS() => 'Data exists for key.',
    ST_E2BIG() => 'Too large.', ST_EINVAL() => 'Invalid arguments',
    ST_NOT_STORED() => 'Not stored.',
    ST_DELTA_BADVAL() => 'Non-numeric server-side value for incr or decr',
    ST_AUTH_ERROR() => 'Auth failure.', ST_UNKNOWN() => 'Unknown command',
);
use constant FENCE_OPAQUE => 0xfe11cefe;

# A request packet. Lengths default to the real ones; any header field can be
# overridden to build malformed packets.
sub req {
    my (%r) = @_;
    my ($ext, $key, $val) = map { $_ // '' } @r{qw(extras key value)};
    return pack('CCnCCnNNQ>',
        $r{magic} // 0x80, $r{op},
        $r{keylen} // length($key), $r{extlen} // length($ext),
        $r{datatype} // 0, $r{vbucket} // 0,
        $r{bodylen} // length($ext) + length($key) + length($val),
        $r{opaque} // 0, $r{cas} // 0) . $ext . $key . $val;
}

sub set_req {
    my ($op, $key, $val, %o) = @_;
    return req(op => $op, key => $key, value => $val,
        extras => pack('NN', $o{flags} // 0, $o{exptime} // 0), %o);
}

sub arith_req {
    my ($op, $key, $delta, $initial, $exptime, %o) = @_;
    return req(op => $op, key => $key,
        extras => pack('Q>Q>N', $delta, $initial, $exptime), %o);
}

# $n bytes from $sock; returns (bytes, undef) or (partial, 'eof'|'timeout').
sub read_n {
    my ($sock, $n, $wait) = @_;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    while (length($buf) < $n) {
        return ($buf, 'timeout') unless $sel->can_read($wait // 5);
        my $got = sysread($sock, my $chunk, $n - length($buf));
        return ($buf, 'eof') unless $got;
        $buf .= $chunk;
    }
    return ($buf, undef);
}

# One response packet as a hash, or { error => 'eof'|'timeout', raw => ... }.
sub read_packet {
    my ($sock, $wait) = @_;
    my ($hdr, $err) = read_n($sock, 24, $wait);
    return { error => $err, raw => $hdr } if $err;
    my %p;
    @p{qw(magic op keylen extlen datatype status bodylen opaque cas)}
        = unpack('CCnCCnNNQ>', $hdr);
    my ($body, $err2) = read_n($sock, $p{bodylen}, $wait);
    return { error => $err2, raw => $hdr . $body } if $err2;
    $p{extras} = substr($body, 0, $p{extlen});
    $p{key} = substr($body, $p{extlen}, $p{keylen});
    $p{value} = substr($body, $p{extlen} + $p{keylen});
    $p{raw} = $hdr . $body;
    return \%p;
}

# Send $bytes plus a noop fence; return the packets answered before the
# fence's reply (ending with an error entry if the stream breaks).
sub exchange {
    my ($sock, $bytes) = @_;
    syswrite($sock, $bytes . req(op => OP_NOOP, opaque => FENCE_OPAQUE));
    my @got;
    while (1) {
        my $p = read_packet($sock);
        if ($p->{error}) { push(@got, $p); last }
        last if $p->{op} == OP_NOOP && $p->{opaque} == FENCE_OPAQUE;
        push(@got, $p);
    }
    return @got;
}

# Readable form of packets for comparisons. An expected packet may say
# cas => 'set' (any non-zero CAS) instead of a number.
sub show {
    my ($want, @packets) = @_;
    my @lines;
    for my $i (0 .. $#packets) {
        my $p = $packets[$i];
        if ($p->{error}) {
            push(@lines, "<$p->{error}" . (length $p->{raw} ? ' after ' . unpack('H*', $p->{raw}) : '') . '>');
            next;
        }
        my $cas = $p->{cas};
        my $w = $want && $want->[$i];
        $cas = 'set' if $w && defined $w->{cas} && $w->{cas} eq 'set' && $cas;
        my $val = $p->{value};
        $val = length($val) . ' bytes ' . substr(unpack('H*', $val), 0, 16) . '...' if length($val) > 80;
        $val =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
        (my $key = $p->{key}) =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
        push(@lines, sprintf('magic=%02x op=%02x status=%04x dt=%d opaque=%08x cas=%s extras=[%s] key=[%s] value=[%s]',
            $p->{magic}, $p->{op}, $p->{status}, $p->{datatype}, $p->{opaque}, $cas,
            unpack('H*', $p->{extras}), $key, $val));
    }
    return join("\n", @lines) . "\n";
}

# An expected response packet (magic 0x81, raw data type).
sub res {
    my (%r) = @_;
    return { magic => 0x81, datatype => 0, status => $r{status} // 0,
        opaque => $r{opaque} // 0, cas => $r{cas} // 0,
        map({ $_ => $r{$_} // '' } qw(extras key value)), op => $r{op} };
}

# The error reply C sends for $status (body = fixed text, no extras or key).
sub err_res {
    my ($op, $status, %r) = @_;
    return res(op => $op, status => $status, value => $ERRTEXT{$status}, %r);
}

# Compare what $bytes (plus the fence) produce with the expected packets.
sub exchange_is {
    my ($sock, $bytes, $want, $name) = @_;
    my @got = exchange($sock, $bytes);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(show($want, @got), show($want, @$want), $name);
    return @got;
}

# Everything the server sends until it closes the connection, or
# "<open>" appended if it stays open and silent for $wait seconds.
sub until_close {
    my ($sock, $wait) = @_;
    my ($data, $sel) = ('', IO::Select->new($sock));
    while ($sel->can_read($wait // 3)) {
        my $n = sysread($sock, my $chunk, 65536);
        return $data unless $n;
        $data .= $chunk;
    }
    return $data . '<open>';
}
# ---------------------------------------------------------------------------
my $server = new_memcached();
my $sock = $server->sock;
my $text = $server->new_sock;

# Move the paused clock forward by exactly $n seconds. While paused, C adds
# each debugtime argument to a running delta, then the whole delta to the clock.
my ($delta, $now) = (0, 0);
sub advance {
    my ($n) = @_;
    my $arg = $n - $delta;
    $delta = $n;
    $now += $n;
    print $text "debugtime $arg\r\n";
    is(scalar(<$text>), "OK\r\n", "clock moves to +$now s");
}
print $text "debugtime p\r\n";
is(scalar(<$text>), "OK\r\n", 'pause the clock');

sub touch_req { my ($op, $key, $exp, %o) = @_; return req(op => $op, key => $key, extras => pack('N', $exp), %o) }
sub hit {
    my ($op, $key, $value, $flags, $cas, %o) = @_;
    return res(op => $op, cas => $cas, extras => pack('N', $flags), value => $value, %o);
}

# --- touch -------------------------------------------------------------------------
my @got = exchange_is($sock, set_req(OP_SET, 't1', 'value1', flags => 5), [res(op => OP_SET, cas => 'set')], 'set t1');
my $cas = $got[0]{cas};
exchange_is($sock, touch_req(OP_TOUCH, 't1', 3, opaque => 0x1234),
    [res(op => OP_TOUCH, opaque => 0x1234, cas => $cas, extras => pack('N', 5))],
    'touch hit: flags in the extras, no value, the unchanged CAS');
exchange_is($sock, touch_req(OP_TOUCH, 'nokey', 3, opaque => 0x99),
    [err_res(OP_TOUCH, ST_ENOENT, opaque => 0x99)], 'touch miss: ENOENT "Not found"');
advance(2);
exchange_is($sock, req(op => OP_GET, key => 't1'), [hit(OP_GET, 't1', 'value1', 5, $cas)], 'alive after 2 s');
advance(1);
exchange_is($sock, req(op => OP_GET, key => 't1'), [err_res(OP_GET, ST_ENOENT)], 'the touch gave it 3 s');
exchange_is($sock, touch_req(OP_TOUCH, 't1', 3), [err_res(OP_TOUCH, ST_ENOENT)], 'an expired item cannot be touched');

# --- gat and friends -------------------------------------------------------------------
@got = exchange($sock, set_req(OP_SET, 'g1', 'gv', flags => 0x10203040, exptime => 2));
$cas = $got[0]{cas};
exchange_is($sock, touch_req(OP_GAT, 'g1', 10, opaque => 1),
    [hit(OP_GAT, 'g1', 'gv', 0x10203040, $cas, opaque => 1)], 'gat hit: flags, value and CAS, like get');
exchange_is($sock, touch_req(OP_GATK, 'g1', 10, opaque => 2),
    [hit(OP_GATK, 'g1', 'gv', 0x10203040, $cas, opaque => 2, key => 'g1')], 'gatk hit: also the key');
exchange_is($sock, touch_req(OP_GATQ, 'g1', 10, opaque => 3),
    [hit(OP_GATQ, 'g1', 'gv', 0x10203040, $cas, opaque => 3)], 'gatq hit: answered');
exchange_is($sock, touch_req(OP_GATKQ, 'g1', 10, opaque => 4),
    [hit(OP_GATKQ, 'g1', 'gv', 0x10203040, $cas, opaque => 4, key => 'g1')], 'gatkq hit: answered with the key');
exchange_is($sock, touch_req(OP_GAT, 'nokey', 10, opaque => 5),
    [err_res(OP_GAT, ST_ENOENT, opaque => 5)], 'gat miss: ENOENT "Not found"');
exchange_is($sock, touch_req(OP_GATK, 'nokey', 10, opaque => 6),
    [res(op => OP_GATK, status => ST_ENOENT, opaque => 6, key => 'nokey')], 'gatk miss: ENOENT with the key, no text');
exchange_is($sock, touch_req(OP_GATQ, 'nokey', 10) . touch_req(OP_GATKQ, 'nokey', 10), [],
    'gatq and gatkq misses are silent');
advance(5);
exchange_is($sock, req(op => OP_GET, key => 'g1'), [hit(OP_GET, 'g1', 'gv', 0x10203040, $cas)],
    'gat extended the 2 s expiration');
exchange_is($sock, touch_req(OP_GATQ, 'g1', 0), [hit(OP_GATQ, 'g1', 'gv', 0x10203040, $cas)], 'gatq with 0: no expiration');
advance(100);
exchange_is($sock, req(op => OP_GET, key => 'g1'), [hit(OP_GET, 'g1', 'gv', 0x10203040, $cas)], 'still there 100 s later');

exchange_is($sock,
    touch_req(OP_GATKQ, 'nokey', 1, opaque => 1) . touch_req(OP_GATKQ, 'g1', 0, opaque => 2)
    . touch_req(OP_GATQ, 'nokey', 1, opaque => 3) . touch_req(OP_GATQ, 'g1', 0, opaque => 4),
    [hit(OP_GATKQ, 'g1', 'gv', 0x10203040, $cas, opaque => 2, key => 'g1'),
     hit(OP_GATQ, 'g1', 'gv', 0x10203040, $cas, opaque => 4)],
    'pipelined quiet gats: only the hits');

# --- expiration times --------------------------------------------------------------------
exchange($sock, set_req(OP_SET, 'rel', 'r', exptime => 10));
exchange($sock, set_req(OP_SET, 'far', 'f', exptime => 0xffffffff));
exchange($sock, set_req(OP_SET, 'past', 'p', exptime => 2592001));
exchange($sock, set_req(OP_SET, 'month', 'm', exptime => 2592000));
exchange_is($sock, req(op => OP_GET, key => 'past'), [err_res(OP_GET, ST_ENOENT)],
    'an expiration over 30 days is an absolute time: one in the past expires at once');
exchange_is($sock, req(op => OP_GET, key => 'far'), [hit(OP_GET, 'far', 'f', 0, 'set')],
    'expiration 0xffffffff is unsigned: far in the future, not negative');
exchange_is($sock, req(op => OP_GET, key => 'month'), [hit(OP_GET, 'month', 'm', 0, 'set')],
    'exactly 30 days is still relative');
advance(9);
exchange_is($sock, req(op => OP_GET, key => 'rel'), [hit(OP_GET, 'rel', 'r', 0, 'set')], 'relative 10 s: alive at 9 s');
advance(1);
exchange_is($sock, req(op => OP_GET, key => 'rel'), [err_res(OP_GET, ST_ENOENT)], 'relative 10 s: gone at 10 s');
exchange_is($sock, touch_req(OP_TOUCH, 'far', 2592001), [res(op => OP_TOUCH, cas => 'set', extras => pack('N', 0))],
    'touch with a past absolute time still answers as a hit');
exchange_is($sock, req(op => OP_GET, key => 'far'), [err_res(OP_GET, ST_ENOENT)], 'and the item is then expired');
exchange_is($sock, touch_req(OP_GAT, 'month', 2592001), [hit(OP_GAT, 'month', 'm', 0, 'set')],
    'gat with a past absolute time returns the value');
exchange_is($sock, req(op => OP_GET, key => 'month'), [err_res(OP_GET, ST_ENOENT)], 'and then it is expired');

# The server clock runs $now s ahead of the wall clock (debugtime).
my $abs = time() + $now + 1000;
exchange($sock, set_req(OP_SET, 'abs', 'a', exptime => $abs));
advance(900);
exchange_is($sock, req(op => OP_GET, key => 'abs'), [hit(OP_GET, 'abs', 'a', 0, 'set')], 'absolute time 1000 s ahead: alive after 900 s');
advance(200);
exchange_is($sock, req(op => OP_GET, key => 'abs'), [err_res(OP_GET, ST_ENOENT)], 'and gone after 1100 s');

# --- flush --------------------------------------------------------------------------------
exchange($sock, set_req(OP_SET, 'f1', 'v') . set_req(OP_SET, 'f2', 'v'));
exchange_is($sock, req(op => OP_FLUSH, opaque => 0x77), [res(op => OP_FLUSH, opaque => 0x77)],
    'flush: empty success reply, CAS 0');
exchange_is($sock, req(op => OP_GET, key => 'f1') . req(op => OP_GET, key => 'f2'),
    [err_res(OP_GET, ST_ENOENT), err_res(OP_GET, ST_ENOENT)], 'everything is gone');
exchange($sock, set_req(OP_SET, 'f3', 'v'));
exchange_is($sock, req(op => OP_GET, key => 'f3'), [hit(OP_GET, 'f3', 'v', 0, 'set')], 'items stored after a flush live');
exchange_is($sock, req(op => OP_FLUSHQ, opaque => 1), [], 'flushq: silent');
exchange_is($sock, req(op => OP_GET, key => 'f3'), [err_res(OP_GET, ST_ENOENT)], 'flushq flushed');
exchange($sock, set_req(OP_SET, 'f4', 'v'));
exchange_is($sock, req(op => OP_FLUSH, extras => pack('N', 0)), [res(op => OP_FLUSH)], 'flush with a zero delay in extras');
exchange_is($sock, req(op => OP_GET, key => 'f4'), [err_res(OP_GET, ST_ENOENT)], 'flushes at once');

advance(1);
exchange($sock, set_req(OP_SET, 'd1', 'v'));
exchange_is($sock, req(op => OP_FLUSH, extras => pack('N', 2)), [res(op => OP_FLUSH)], 'flush with a 2 s delay');
exchange_is($sock, req(op => OP_GET, key => 'd1'), [hit(OP_GET, 'd1', 'v', 0, 'set')], 'nothing flushed yet');
exchange($sock, set_req(OP_SET, 'd2', 'v'));
advance(1);
exchange_is($sock, req(op => OP_GET, key => 'd1') . req(op => OP_GET, key => 'd2'),
    [err_res(OP_GET, ST_ENOENT), err_res(OP_GET, ST_ENOENT)],
    'one second later, items stored before or after the flush are gone (the cut-off is delay - 1)');
exchange($sock, set_req(OP_SET, 'd3', 'v'));
exchange_is($sock, req(op => OP_GET, key => 'd3'), [err_res(OP_GET, ST_ENOENT)],
    'an item stored in the cut-off second is flushed too');
advance(1);
exchange($sock, set_req(OP_SET, 'd4', 'v'));
exchange_is($sock, req(op => OP_GET, key => 'd4'), [hit(OP_GET, 'd4', 'v', 0, 'set')], 'after the cut-off, items live');
exchange_is($sock, req(op => OP_FLUSHQ, extras => pack('N', 5)), [], 'flushq with a delay: silent');
exchange_is($sock, req(op => OP_GET, key => 'd4'), [hit(OP_GET, 'd4', 'v', 0, 'set')], 'not flushed yet');
advance(4);
exchange_is($sock, req(op => OP_GET, key => 'd4'), [err_res(OP_GET, ST_ENOENT)], 'flushed after delay - 1 s');

# --- flush disabled -----------------------------------------------------------------------------
{
    my $noflush = new_memcached('-F');
    my $s = $noflush->sock;
    exchange($s, set_req(OP_SET, 'keep', 'v'));
    exchange_is($s, req(op => OP_FLUSH, opaque => 3), [err_res(OP_FLUSH, ST_AUTH_ERROR, opaque => 3)],
        'with -F, flush answers AUTH_ERROR "Auth failure."');
    exchange_is($s, req(op => OP_FLUSHQ, extras => pack('N', 0)), [err_res(OP_FLUSHQ, ST_AUTH_ERROR)],
        'flushq too, not quietly');
    exchange_is($s, req(op => OP_GET, key => 'keep'), [hit(OP_GET, 'keep', 'v', 0, 'set')], 'nothing was flushed');
}

done_testing();
