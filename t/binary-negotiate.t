#!/usr/bin/env perl
# Choosing the protocol, as C memcached 1.6.45 does: with -B auto (the
# default) each connection is binary if its first byte is 0x80 and text
# otherwise, for its whole life; -B ascii parses binary packets as text
# lines; -B binary closes on anything that is not a 0x80 packet. The
# binding_protocol setting is reported by both protocols.

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
# Text reply lines (or the raw bytes) until the server is quiet for $wait s.
sub drain {
    my ($sock, $wait) = @_;
    my ($data, $sel) = ('', IO::Select->new($sock));
    while ($sel->can_read($wait // 0.5)) {
        my $n = sysread($sock, my $chunk, 65536);
        return $data . '<closed>' unless $n;
        $data .= $chunk;
    }
    return $data;
}

sub text_cmd {
    my ($sock, $cmd) = @_;
    print $sock $cmd;
    my $line = <$sock>;
    return $line;
}

my $version_re = qr/^(?:1\.6\.45|UNKNOWN)$/;

# --- auto (default) ----------------------------------------------------------------
{
    my $server = new_memcached();
    my $bin1 = $server->new_sock;
    my $txt1 = $server->new_sock;
    my $bin2 = $server->new_sock;
    my $txt2 = $server->new_sock;

    exchange_is($bin1, set_req(OP_SET, 'shared', 'from-binary', flags => 12), [res(op => OP_SET, cas => 'set')],
        'auto: a connection starting with 0x80 speaks binary');
    is(text_cmd($txt1, "get shared\r\n"), "VALUE shared 12 11\r\n", 'auto: a connection starting with text speaks text');
    is(scalar(<$txt1>) . scalar(<$txt1>), "from-binary\r\nEND\r\n", 'and sees the binary-stored value');
    is(text_cmd($txt2, "set shared 7 0 9\r\nfrom-text\r\n"), "STORED\r\n", 'auto: a second text connection');
    exchange_is($bin2, req(op => OP_GETK, key => 'shared'),
        [res(op => OP_GETK, cas => 'set', extras => pack('N', 7), key => 'shared', value => 'from-text')],
        'auto: a second binary connection sees the text-stored value');
    exchange_is($bin1, req(op => OP_GET, key => 'shared'),
        [res(op => OP_GET, cas => 'set', extras => pack('N', 7), value => 'from-text')], 'the first binary connection too');
    like(text_cmd($txt1, "version\r\n"), qr/^VERSION (?:1\.6\.45|UNKNOWN)\r\n\z/, 'the text connection is unaffected');

    my %settings;
    syswrite($bin1, req(op => OP_STAT, key => 'settings'));
    while (1) {
        my $p = read_packet($bin1);
        last if $p->{error} || !$p->{keylen};
        $settings{$p->{key}} = $p->{value};
    }
    is($settings{binding_protocol}, 'auto-negotiate', 'binary stat settings: binding_protocol auto-negotiate');
    my $st = mem_stats($txt1, 'settings');
    is($st->{binding_protocol}, 'auto-negotiate', 'text stats settings agrees');

    # A text connection stays text: binary packets are parsed as text lines.
    my $t = $server->new_sock;
    is(text_cmd($t, "version\r\n") =~ /^VERSION/ ? 'ok' : 'no', 'ok', 'a new text connection');
    syswrite($t, req(op => OP_VERSION));
    is(drain($t), '', 'a binary packet without a newline byte on a text connection: no reply yet');
    syswrite($t, "\r\n");
    is(drain($t), "ERROR\r\n", 'once a newline arrives, the packet is an unknown text command');
    like(text_cmd($t, "version\r\n"), qr/^VERSION /, 'and the connection still speaks text');

    # A binary connection stays binary: text is a bad magic byte.
    my $b = $server->new_sock;
    exchange($b, req(op => OP_NOOP));
    syswrite($b, "version\r\nversion\r\nversion\r\n");
    is(drain($b, 3), '<closed>', 'text on a binary connection: closed without a reply');

    my $n = $server->new_sock;
    exchange_is($n, req(op => OP_NOOP, opaque => 9), [res(op => OP_NOOP, opaque => 9)], 'the server keeps accepting binary');
}

# --- ascii ---------------------------------------------------------------------------------
{
    my $server = new_memcached('-B ascii');
    my $s = $server->new_sock;
    is(text_cmd($s, "set k 0 0 1\r\nv\r\n"), "STORED\r\n", 'ascii: text works');
    is(mem_stats($s, 'settings')->{binding_protocol}, 'ascii', 'ascii: binding_protocol ascii');

    # The noop opcode is 0x0a, a newline: the text line is the magic byte alone.
    $s = $server->new_sock;
    syswrite($s, req(op => OP_NOOP));
    is(drain($s), "CLIENT_ERROR bad command line format\r\n",
        'ascii: a binary noop is a one-byte text line, then 22 bytes wait for a newline');
    syswrite($s, "\r\n");
    is(drain($s), "ERROR\r\n", 'ascii: the rest of the header becomes an unknown command');

    $s = $server->new_sock;
    syswrite($s, req(op => OP_GET, key => 'k'));
    is(drain($s), '', 'ascii: a binary get (no newline byte) gets no reply');
    syswrite($s, "\r\n");
    is(drain($s), "ERROR\r\n", 'ascii: with a newline it is an unknown command');
    like(text_cmd($s, "version\r\n"), qr/^VERSION /, 'ascii: the connection stays usable');

    $s = $server->new_sock;
    syswrite($s, set_req(OP_SET, 'k', 'binary') . "\r\n");
    is(drain($s), "ERROR\r\n", 'ascii: a binary set is not stored');
    is(text_cmd($s, "get k\r\n"), "VALUE k 0 1\r\n", 'ascii: the old value is unchanged');
}

# --- binary --------------------------------------------------------------------------------------
{
    my $server = new_memcached('-B binary');
    my $s = $server->new_sock;
    exchange_is($s, req(op => OP_NOOP), [res(op => OP_NOOP)], 'binary: binary works');
    my %settings;
    syswrite($s, req(op => OP_STAT, key => 'settings'));
    while (1) {
        my $p = read_packet($s);
        last if $p->{error} || !$p->{keylen};
        $settings{$p->{key}} = $p->{value};
    }
    is($settings{binding_protocol}, 'binary', 'binary: binding_protocol binary');

    $s = $server->new_sock;
    syswrite($s, "stats settings\r\nversion\r\n");
    is(drain($s, 3), '<closed>', 'binary: text commands (24 bytes or more) close the connection silently');
    $s = $server->new_sock;
    syswrite($s, "version\r\n");
    is(drain($s), '', 'binary: a short text command waits for the rest of a 24-byte header');
    my @got = exchange($server->new_sock, req(op => OP_VERSION, opaque => 1));
    like($got[0]{value} // '', $version_re, 'binary: the server still answers');
}

done_testing();
