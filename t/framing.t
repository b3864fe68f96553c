#!/usr/bin/env perl
# Text protocol framing: line endings, short and malformed lines, unknown
# commands, pipelining, split writes, HTTP requests and the 2048-byte limit
# on a line without a newline.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $VERSION_REPLY = "VERSION $version\r\n";
my $BAD_FORMAT = "CLIENT_ERROR bad command line format\r\n";

my $server = new_memcached();

# Read until the server closes or stays quiet for $quiet seconds; once
# $want bytes are in, only a short extra wait is made for anything more.
# Returns (data, closed); a reset counts as closed.
sub drain {
    my ($sock, $quiet, $want) = @_;
    my ($data, $rin) = ('', '');
    vec($rin, fileno($sock), 1) = 1;
    my $wait = $quiet;
    while (select(my $rout = $rin, undef, undef, $wait)) {
        my $n = sysread($sock, my $chunk, 65536);
        return ($data, 1) unless $n;
        $data .= $chunk;
        $wait = 0.05 if defined $want && length($data) >= $want;
    }
    return ($data, 0);
}

# Send $request on a fresh connection; return what comes back, expecting
# $want bytes.
sub exchange {
    my ($request, $want) = @_;
    my $sock = $server->new_sock;
    syswrite($sock, $request);
    return drain($sock, 2, $want);
}

sub show { my $s = shift; $s =~ s/\r/\\r/g; $s =~ s/\n/\\n/g; $s =~ s/\0/\\0/g; return length($s) > 40 ? substr($s, 0, 37) . '...' : $s }

# ---------------------------------------------------------------------------
# Replies to single lines: [request, reply]

my @replies = (
    ["version\r\n", $VERSION_REPLY],
    ["version\n", $VERSION_REPLY],
    ["\r\n", $BAD_FORMAT],
    ["\n", $BAD_FORMAT],
    ["a\r\n", $BAD_FORMAT],
    ["a\n", $BAD_FORMAT],
    ["ab\n", $BAD_FORMAT],
    ["ab\r\n", "ERROR\r\n"],
    ["abc\n", "ERROR\r\n"],
    ["bogus\r\n", "ERROR\r\n"],
    ["bogus with args\r\n", "ERROR\r\n"],
    [" version\r\n", "ERROR\r\n"],
    ["version\r\r\n", "ERROR\r\n"],
    ["version\0\r\n", "ERROR\r\n"],
    ["vers\0ion\r\n", "ERROR\r\n"],
    ["verbosity\t0\r\n", "ERROR\r\n"],
    ["verbosity  0\r\n", "OK\r\n"],
    ["HTTP/1.0\r\n", "ERROR\r\n"],
    ["foo bar http/1.0\r\n", "ERROR\r\n"],
    [("x" x 5000) . "\r\n", "ERROR\r\n"],
    ["version" . (" " x 5000) . "\r\n", $VERSION_REPLY],
    ["version " . ("y" x 15000) . "\n", $VERSION_REPLY],
);
for my $case (@replies) {
    my ($request, $reply) = @$case;
    my ($data, $closed) = exchange($request, length($reply));
    is($data, $reply, "'" . show($request) . "' => " . show($reply));
    ok(!$closed, "'" . show($request) . "' keeps the connection");
}

# Nothing at all is sent back for noreply.
{
    my ($data) = exchange("bogus noreply\r\nversion\r\n", length($VERSION_REPLY));
    is($data, $VERSION_REPLY, "unknown command with noreply is silent");
}

# ---------------------------------------------------------------------------
# Pipelining and split writes.

{
    my $want = $VERSION_REPLY . "ERROR\r\n" . $VERSION_REPLY . $BAD_FORMAT . $VERSION_REPLY;
    my ($data) = exchange("version\r\nbogus\nversion\n\r\nversion\r\n", length($want));
    is($data, $want, "pipelined commands answered in order");

    ($data) = exchange("version\r\n" x 200, 200 * length($VERSION_REPLY));
    is($data, $VERSION_REPLY x 200, "200 pipelined commands in one write");

    my $sock = $server->new_sock;
    $sock->autoflush(1);
    for my $byte (split //, "version\r\nbogus\r\n") {
        syswrite($sock, $byte);
        MemcachedTest::sleep(0.005);
    }
    ($data) = drain($sock, 2, length($VERSION_REPLY . "ERROR\r\n"));
    is($data, $VERSION_REPLY . "ERROR\r\n", "commands sent a byte at a time");
}

# ---------------------------------------------------------------------------
# HTTP requests are dropped without a reply.

for my $request ("GET / HTTP/1.1\r\n", "GET / HTTP/1.0\n", "foo HTTP/\r\n",
                 "HEAD /x HTTP/1.1\r\nHost: y\r\n\r\n") {
    my ($data, $closed) = exchange($request, 0);
    is($data, '', "'" . show($request) . "': no reply");
    ok($closed, "'" . show($request) . "': connection closed");
}

# ---------------------------------------------------------------------------
# Lines without a newline: up to 2048 bytes are kept waiting, more close the
# connection, unless it looks like a large "get"/"gets".

my %stays = (
    "2048 bytes" => "x" x 2048,
    "get, 3000 bytes" => "get " . ("k" x 3000),
    "gets, 3000 bytes" => "gets " . ("k" x 3000),
    "100 spaces then get" => (" " x 100) . "get " . ("k" x 3000),
    "get, 15000 bytes" => "get " . ("k" x 15000),
);
my %closes = (
    "2049 bytes" => "x" x 2049,
    "101 spaces then get" => (" " x 101) . "get " . ("k" x 3000),
    "gat, 3000 bytes" => "gat " . ("k" x 3000),
    "version, 3000 bytes" => "version " . ("v" x 3000),
    "17000-byte line with a newline" => ("x" x 17000) . "\r\n",
);
my (%open_socks, %closed_socks);
for my $name (sort keys %stays) {
    $open_socks{$name} = $server->new_sock;
    syswrite($open_socks{$name}, $stays{$name});
}
for my $name (sort keys %closes) {
    $closed_socks{$name} = $server->new_sock;
    syswrite($closed_socks{$name}, $closes{$name});
}
MemcachedTest::sleep(0.5);
for my $name (sort keys %stays) {
    my ($data, $closed) = drain($open_socks{$name}, 0.01);
    ok(!$closed && $data eq '', "no newline after $name: connection waits");
}
for my $name (sort keys %closes) {
    my ($data, $closed) = drain($closed_socks{$name}, 2);
    ok($closed && $data eq '', "no newline after $name: connection closed silently");
}

# The waiting 2048-byte line is still usable once its newline arrives.
{
    my $sock = $open_socks{"2048 bytes"};
    syswrite($sock, "\r\nversion\r\n");
    my ($data, $closed) = drain($sock, 2, length("ERROR\r\n$VERSION_REPLY"));
    is($data, "ERROR\r\n$VERSION_REPLY", "2048-byte line completed: unknown command, then version");
    ok(!$closed, "... connection still open");
}

# The limit counts bytes across reads.
{
    my $sock = $server->new_sock;
    syswrite($sock, "x" x 2000);
    my ($data, $closed) = drain($sock, 0.2);
    ok(!$closed, "2000 bytes: waiting");
    syswrite($sock, "x" x 49);
    ($data, $closed) = drain($sock, 2);
    ok($closed, "49 more bytes: closed");
}

# The server is fine after all that.
{
    my $sock = $server->sock;
    print $sock "version\r\n";
    is(scalar <$sock>, $VERSION_REPLY, "server still answers");
}

done_testing();
