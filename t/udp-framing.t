#!/usr/bin/env perl
# UDP, as C memcached 1.6.45 frames it: every datagram starts with an 8-byte
# header (request id, sequence number, datagram count, reserved, each 16 bits
# big-endian). Replies echo the request id; a reply larger than 1392 bytes of
# payload is split into 1400-byte datagrams numbered 0..n-1 with the count n in
# each. Requests claiming more than one datagram, or 8 bytes or less, are
# dropped; a command cut short by the end of a datagram is forgotten. Each
# response object of the server is framed on its own, so a multi-key get
# answers one datagram per key (and an empty one, count 0, for a leading miss).
# Text and binary commands both work; quit does not end anything.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $server = new_memcached('-l 127.0.0.1');
ok($server->udpport, 'the server listens on UDP port ' . ($server->udpport // '?'));
my $tcp = $server->sock;
my $udp = $server->new_udp_sock;

sub udp_send {
    my ($sock, $id, $payload, %h) = @_;
    send($sock, pack('nnnn', $id, $h{seq} // 0, $h{total} // 1, $h{reserved} // 0) . $payload, 0);
}

# The next $n datagrams as "id/seq/total/reserved" headers and payloads.
sub udp_recv {
    my ($sock, $n) = @_;
    my $sel = IO::Select->new($sock);
    my @got;
    for (1 .. $n) {
        last unless $sel->can_read(3);
        my $buf;
        defined(recv($sock, $buf, 1 << 17, 0)) or last;
        last if length($buf) < 8;
        push(@got, { hdr => join('/', unpack('nnnn', $buf)), payload => substr($buf, 8), size => length($buf) });
    }
    return @got;
}

# Printable summary of datagrams.
sub summary {
    return join(' | ', map {
        my $p = $_->{payload};
        $p = length($p) . ' bytes' if length($p) > 60;
        $p =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
        "$_->{hdr} $p";
    } @_);
}

# Send $payload with request id $id; compare the next datagrams.
sub udp_is {
    my ($id, $payload, $want, $name, %h) = @_;
    udp_send($udp, $id, $payload, %h);
    my @got = udp_recv($udp, scalar(@$want));
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(summary(@got), summary(map { { hdr => $_->[0], payload => $_->[1] } } @$want), $name);
}

# Nothing was sent since the last reply: a version request gets the next datagram.
my $probe_id = 60000;
sub nothing_pending {
    my ($name) = @_;
    $probe_id++;
    udp_send($udp, $probe_id, "version\r\n");
    my @got = udp_recv($udp, 1);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    like(summary(@got), qr{^$probe_id/0/1/0 VERSION \S+\\x0d\\x0a\z}, $name);
}

sub tcp_cmd {
    my ($cmd) = @_;
    print $tcp $cmd;
    return scalar(<$tcp>);
}

is(tcp_cmd("set foo 5 0 3\r\nbar\r\n"), "STORED\r\n", 'store foo over TCP');

# --- the frame header -------------------------------------------------------------------
udp_is(1, "get foo\r\n", [['1/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]], 'get: one datagram, id echoed, 0 of 1');
udp_is(0, "get foo\r\n", [['0/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]], 'request id 0');
udp_is(0xabcd, "get foo\r\n", [['43981/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]], 'request id 0xabcd, big-endian');
udp_is(0xffff, "get nope\r\n", [['65535/0/1/0', "END\r\n"]], 'request id 0xffff; a miss');
udp_is(7, "get foo\r\n", [['7/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]], 'a request sequence number is ignored', seq => 3);
udp_is(8, "get foo\r\n", [['8/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]], 'the reserved field is ignored', reserved => 0xffff);

# --- dropped requests ---------------------------------------------------------------------
udp_send($udp, 10, "get foo\r\n", total => 2);
udp_send($udp, 11, "get foo\r\n", total => 0);
udp_send($udp, 12, "get foo\r\n", total => 0x0101);
nothing_pending('requests claiming 2, 0 or 257 datagrams are dropped');
send($udp, pack('nnnn', 13, 0, 1, 0), 0);
send($udp, "\0\x0e\0\0\0", 0);
nothing_pending('datagrams of 8 bytes or less are dropped');

# --- several commands, partial commands -------------------------------------------------------
{
    udp_send($udp, 20, "get foo\r\nversion\r\nget nope\r\n");
    my @got = udp_recv($udp, 3);
    my $s = summary(@got);
    like($s, qr{^20/0/1/0 VALUE foo 5 3\\x0d\\x0abar\\x0d\\x0aEND\\x0d\\x0a \| 20/0/1/0 VERSION \S+\\x0d\\x0a \| 20/0/1/0 END\\x0d\\x0a\z},
        'three commands in one datagram: three datagrams, each 0 of 1');
}
udp_send($udp, 21, "get ");
udp_is(22, "foo\r\n", [['22/0/1/0', "ERROR\r\n"]], 'a command cut by the end of its datagram is forgotten, not joined with the next');

# --- multi-key gets: one datagram per response object ----------------------------------------------
udp_is(30, "get foo foo\r\n",
    [['30/0/1/0', "VALUE foo 5 3\r\nbar\r\n"], ['30/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]],
    'get of two keys: one datagram per key, END with the last');
udp_is(31, "get foo nope foo\r\n",
    [['31/0/1/0', "VALUE foo 5 3\r\nbar\r\n"], ['31/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]],
    'a miss in the middle sends nothing');
udp_is(32, "get foo foo nope\r\n",
    [['32/0/1/0', "VALUE foo 5 3\r\nbar\r\n"], ['32/0/1/0', "VALUE foo 5 3\r\nbar\r\n"], ['32/0/1/0', "END\r\n"]],
    'a miss at the end carries END alone');
udp_is(33, "get nope nope\r\n", [['33/0/0/0', ''], ['33/0/1/0', "END\r\n"]],
    'a miss first: an empty datagram counting 0 datagrams, then END');
udp_is(34, "get nope foo\r\n", [['34/0/0/0', ''], ['34/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]],
    'a leading miss before a hit: the empty datagram too');
nothing_pending('nothing else after the multi-key gets');

# --- large replies ------------------------------------------------------------------------------------
# Key "k": "VALUE k 0 N\r\n" is 16 bytes for a 4-digit N, plus N, "\r\n" and "END\r\n".
for my $case ([1369, [1392]], [1370, [1392, 1]], [5000, [1392, 1392, 1392, 847]],
              [20000, [(1392) x 14, 536]]) {
    my ($len, $sizes) = @$case;
    my $value = join('', map { chr(97 + $_ % 26) } 1 .. $len);
    is(tcp_cmd("set k 0 0 $len\r\n$value\r\n"), "STORED\r\n", "store a $len-byte value");
    udp_send($udp, 40 + $len, "get k\r\n");
    my @got = udp_recv($udp, scalar(@$sizes));
    my $n = @$sizes;
    is(join(' ', map { "$_->{hdr}:" . length($_->{payload}) } @got),
        join(' ', map { (40 + $len) . "/$_/$n/0:" . $sizes->[$_] } 0 .. $#$sizes),
        "a $len-byte value: $n datagram(s) of at most 1400 bytes, numbered 0.." . ($n - 1) . " of $n");
    is(join('', map { $_->{payload} } @got), "VALUE k 0 $len\r\n$value\r\nEND\r\n", "a $len-byte value: the pieces join up");
}
nothing_pending('nothing else after the large replies');

{
    udp_send($udp, 50, "stats\r\n");
    my ($first) = udp_recv($udp, 1);
    my ($id, $seq, $total) = split(m{/}, $first->{hdr} // '0/0/0/0');
    ok($id == 50 && $seq == 0 && $total >= 2, "stats: a multi-datagram reply ($total datagrams)");
    my @rest = udp_recv($udp, $total - 1);
    is(join(' ', map { (split m{/}, $_->{hdr})[1] } $first, @rest), join(' ', 0 .. $total - 1), 'stats: numbered in order');
    my $all = join('', map { $_->{payload} } $first, @rest);
    like($all, qr/\ASTAT pid \d+\r\n(?:STAT \S+ [^\r\n]*\r\n)+END\r\n\z/, 'stats: the pieces form the text reply');
}

# --- large requests --------------------------------------------------------------------------------------
my $big = 'z' x 60000;
udp_is(60, "set bigudp 3 0 60000\r\n$big\r\n", [['60/0/1/0', "STORED\r\n"]], 'a 60000-byte value set in one datagram');
is(tcp_cmd("get bigudp\r\n"), "VALUE bigudp 3 60000\r\n", 'and stored');
is(scalar(<$tcp>), "$big\r\n", 'with its data');
is(scalar(<$tcp>), "END\r\n", 'end');

# --- text commands over UDP ------------------------------------------------------------------------------
for my $case (
    ["set u 1 0 2\r\nab\r\n", "STORED\r\n"],
    ["add u 1 0 2\r\nab\r\n", "NOT_STORED\r\n"],
    ["append u 0 0 1\r\nc\r\n", "STORED\r\n"],
    ["prepend u 0 0 1\r\n1\r\n", "STORED\r\n"],
    ["get u\r\n", "VALUE u 1 4\r\n1abc\r\nEND\r\n"],
    ["set n 0 0 2\r\n10\r\n", "STORED\r\n"],
    ["incr n 5\r\n", "15\r\n"],
    ["decr n 20\r\n", "0\r\n"],
    ["touch n 100\r\n", "TOUCHED\r\n"],
    ["delete n\r\n", "DELETED\r\n"],
    ["delete n\r\n", "NOT_FOUND\r\n"],
    ["set q 0 0 1 noreply\r\nx\r\nget q\r\n", "VALUE q 0 1\r\nx\r\nEND\r\n"],
    ["ms m 2 T0\r\nhi\r\n", "HD\r\n"],
    ["mg m v\r\n", "VA 2\r\nhi\r\n"],
    ["mn\r\n", "MN\r\n"],
    ["verbosity 0\r\n", "OK\r\n"],
    ["bogus\r\n", "ERROR\r\n"],
) {
    my ($cmd, $reply) = @$case;
    (my $name = $cmd) =~ s/\r\n.*//s;
    udp_is(70, $cmd, [['70/0/1/0', $reply]], "over UDP: $name");
}
udp_send($udp, 71, "delete u noreply\r\n");
nothing_pending('noreply: nothing is sent');
udp_is(72, "get u\r\n", [['72/0/1/0', "END\r\n"]], 'the noreply delete happened');

# quit closes nothing on UDP: an empty response is framed as an empty datagram.
udp_is(73, "quit\r\n", [['73/0/0/0', '']], 'quit: an empty datagram counting 0 datagrams');
udp_is(74, "get foo\r\n", [['74/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]], 'and UDP keeps working');

# --- binary over UDP -------------------------------------------------------------------------------------
sub breq {
    my ($op, $key, $opaque, $extras) = @_;
    $extras //= '';
    return pack('CCnCCnNNQ>', 0x80, $op, length($key), length($extras), 0, 0,
        length($key) + length($extras), $opaque, 0) . $extras . $key;
}
sub bres {
    my ($op, $status, $opaque, $cas, $extras, $key, $value) = @_;
    return pack('CCnCCnNNQ>', 0x81, $op, length($key), length($extras), 0, $status,
        length($extras) + length($key) + length($value), $opaque, $cas) . $extras . $key . $value;
}
print $tcp "mg foo c\r\n";
my ($foo_cas) = scalar(<$tcp>) =~ /c(\d+)/;
ok($foo_cas, 'the CAS of foo');
udp_is(80, breq(0x00, 'foo', 0x11), [['80/0/1/0', bres(0x00, 0, 0x11, $foo_cas, pack('N', 5), '', 'bar')]],
    'binary get over UDP: the binary reply in one datagram');
udp_is(81, breq(0x0c, 'nope', 0x12), [['81/0/1/0', bres(0x0c, 1, 0x12, 0, '', 'nope', '')]], 'binary getk miss');
udp_is(82, breq(0x09, 'foo', 1) . breq(0x09, 'nope', 2) . breq(0x0d, 'foo', 3) . breq(0x0a, '', 4),
    [['82/0/1/0', bres(0x09, 0, 1, $foo_cas, pack('N', 5), '', 'bar')],
     ['82/0/1/0', bres(0x0d, 0, 3, $foo_cas, pack('N', 5), 'foo', 'bar')],
     ['82/0/1/0', bres(0x0a, 0, 4, 0, '', '', '')]],
    'binary getq/getkq/noop in one datagram: one datagram per reply, misses silent');
{
    my $value = 'B' x 3000;
    is(tcp_cmd("set bb 0 0 3000\r\n$value\r\n"), "STORED\r\n", 'store a 3000-byte value');
    udp_send($udp, 83, breq(0x00, 'bb', 9));
    my @got = udp_recv($udp, 3);
    is(join(' ', map { "$_->{hdr}:" . length($_->{payload}) } @got), '83/0/3/0:1392 83/1/3/0:1392 83/2/3/0:244',
        'a binary reply of 3028 bytes: 3 datagrams');
    my $all = join('', map { $_->{payload} } @got);
    is(substr($all, 24), pack('N', 0) . $value, 'the pieces join up into extras and value');
}
udp_is(84, breq(0x00, 'foo', 1, 'xxxx'), [['84/0/1/0', bres(0x00, 4, 1, 0, '', '', 'Invalid arguments')]],
    'binary invalid arguments over UDP');
udp_is(85, "get foo\r\n", [['85/0/1/0', "VALUE foo 5 3\r\nbar\r\nEND\r\n"]], 'UDP keeps working after a binary protocol error');
udp_is(86, breq(0x07, '', 5), [['86/0/1/0', bres(0x07, 0, 5, 0, '', '', '')]], 'binary quit: answered, nothing closed');
udp_is(87, breq(0x17, '', 6), [['87/0/0/0', '']], 'binary quitq: an empty datagram');
udp_send($udp, 88, substr(breq(0x00, 'foo', 1), 0, 26));
nothing_pending('a binary request cut short by its datagram gets nothing');
# Each datagram picks its protocol by its first byte.
udp_is(89, pack('CCnCCnNNQ>', 0x81, 0x0a, 0, 0, 0, 0, 0, 1, 0), [['89/0/1/0', "CLIENT_ERROR bad command line format\r\n"]],
    'a datagram not starting with 0x80 is text (0x0a in the header ends a one-byte line)');

# --- replies go back to the sender -----------------------------------------------------------------------
{
    my $other = $server->new_udp_sock;
    udp_send($other, 99, "get foo\r\n");
    udp_send($udp, 99, "version\r\n");
    my @a = udp_recv($other, 1);
    my @b = udp_recv($udp, 1);
    is(summary(@a), summary({ hdr => '99/0/1/0', payload => "VALUE foo 5 3\r\nbar\r\nEND\r\n" }),
        'two clients with the same request id: each gets its own reply');
    like(summary(@b), qr{^99/0/1/0 VERSION }, 'the other one too');
}

done_testing();
