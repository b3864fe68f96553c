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
