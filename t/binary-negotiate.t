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

use MemcachedBinary;

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
