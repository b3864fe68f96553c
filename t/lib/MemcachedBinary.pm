package MemcachedBinary;
# Binary protocol helpers shared by the t/binary-*.t files: building request packets
# (with any header field overridable, for malformed ones), reading and showing replies, and
# comparing exchanges.

use strict;
use warnings;
use Test::More;
use IO::Select;
use Exporter 'import';

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

our @EXPORT = qw(
    OP_GET OP_SET OP_ADD OP_REPLACE OP_DELETE OP_INCR OP_DECR OP_QUIT OP_FLUSH OP_GETQ OP_NOOP OP_VERSION OP_GETK OP_GETKQ OP_APPEND OP_PREPEND OP_STAT OP_SETQ OP_ADDQ OP_REPLACEQ OP_DELETEQ OP_INCRQ OP_DECRQ OP_QUITQ OP_FLUSHQ OP_APPENDQ OP_PREPENDQ OP_VERBOSITY OP_TOUCH OP_GAT OP_GATQ OP_SASL_LIST OP_SASL_AUTH OP_SASL_STEP OP_GATK OP_GATKQ ST_OK ST_ENOENT ST_EEXISTS ST_E2BIG ST_EINVAL ST_NOT_STORED ST_DELTA_BADVAL ST_AUTH_ERROR ST_UNKNOWN ST_ENOMEM FENCE_OPAQUE req set_req arith_req read_n read_packet exchange show res err_res exchange_is until_close
);

1;
