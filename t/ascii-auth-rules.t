#!/usr/bin/env perl
# Ascii authentication (-Y) as C 1.6.45 does it: the only request an
# unauthenticated client may send is "set <key> <flags> <ttl> <N>" with an
# N-byte "user password" value; every other line is refused, junk closes the
# connection, the file is reloaded on SIGHUP (a bad reload keeps the old
# entries), and the start-up checks refuse what cannot work with it.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(run_binary);

use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);

my $tmp = tempdir(CLEANUP => 1);
my $authfile = "$tmp/auth";

sub write_file {
    my ($path, $text) = @_;
    open(my $fh, '>', $path) or die "$path: $!";
    print $fh $text;
    close($fh);
}

sub talk {
    my ($sock, $send) = @_;
    print $sock $send;
    my ($got) = mem_drain($sock);
    return $got;
}

write_file($authfile, "foo:bar\nbaaaz:quux\r\nsp:a b c\n:nouser\n");
my $server = new_memcached("-Y $authfile -U 0");

# ---- refused before authentication ----
{
    my $sock = $server->new_sock;
    is(talk($sock, "version\r\n"), "CLIENT_ERROR unauthenticated\r\n", "version refused");
    is(talk($sock, "get foo\r\n"), "CLIENT_ERROR unauthenticated\r\n", "get refused");
    is(talk($sock, "set foo 0 0\r\n"), "CLIENT_ERROR unauthenticated\r\n",
        "set without a length refused");
    is(talk($sock, "set foo 0 0 x\r\n"), "CLIENT_ERROR unauthenticated\r\n",
        "set with a bad length refused");
    is(talk($sock, "set foo 0 0 16385\r\n"), "CLIENT_ERROR auth token too long\r\n",
        "token over 16384 bytes");
    is(talk($sock, "set foo 0 0 4294967296\r\n"), "CLIENT_ERROR unauthenticated\r\n",
        "length beyond 32 bits");
    is(talk($sock, "set foo 0 0 6\r\nfoobar\r\n"),
        "CLIENT_ERROR bad authentication token format\r\n", "token without a space");
    is(talk($sock, "set foo 0 0 3\r\nfooXY"),
        "CLIENT_ERROR bad command line termination\r\n", "token not ended by \\r\\n");
    is(talk($sock, "set foo 0 0 7\r\nfoo baz\r\n"),
        "CLIENT_ERROR authentication failure\r\n", "wrong password");
    is(talk($sock, "set foo 0 0 6\r\nfoo ba\r\n"),
        "CLIENT_ERROR authentication failure\r\n", "password prefix");
    # Two refused lines in one read: the second reply takes the place of the
    # first before either is written, as in C.
    is(talk($sock, "version\r\nset foo 0 0 16385\r\n"),
        "CLIENT_ERROR auth token too long\r\n", "pipelined refusals: one reply");
    # The token may arrive in pieces.
    print $sock "set foo 0 0 7\r\nfo";
    my ($none) = mem_drain($sock, 0.2);
    is($none, '', "no reply before the whole token");
    is(talk($sock, "o bar\r\n"), "STORED\r\n", "token in two pieces authenticates");
    is(talk($sock, "version\r\n"), "VERSION 1.6.45\r\n", "commands work after");
    is(talk($sock, "set k 0 0 2\r\nhi\r\nget k\r\n"),
        "STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n", "an ordinary set after");
}

# ---- entries of the file ----
for my $case (["baaaz quux", "line ended by \\r\\n"], ["sp a b c", "spaces in the password"],
              [" nouser", "empty user"]) {
    my ($token, $what) = @$case;
    my $sock = $server->new_sock;
    my $len = length $token;
    is(talk($sock, "set x 0 0 $len\r\n$token\r\nversion\r\n"),
        "STORED\r\nVERSION 1.6.45\r\n", "$what: authenticates");
}

# A line without "\r" loses its last character to C's tokenizer: "70" is 7.
{
    my $sock = $server->new_sock;
    is(talk($sock, "set foo 0 0 70\nfoo bar\r\nversion\r\n"),
        "STORED\r\nVERSION 1.6.45\r\n", "length of a line without \\r");
    $sock = $server->new_sock;
    is(talk($sock, "set foo 0 0 7\n"), "CLIENT_ERROR unauthenticated\r\n",
        "one-digit length without \\r is no length");
}

# ---- junk closes ----
{
    my $sock = $server->new_sock;
    my ($got, $eof) = do { print $sock "get\r\n"; mem_drain($sock) };
    ok($eof && $got eq '', "a line under 6 bytes closes");
    $sock = $server->new_sock;
    ($got, $eof) = do { print $sock "x" x 2049; mem_drain($sock) };
    ok($eof && $got eq '', "2049 bytes without a newline close");
    $sock = $server->new_sock;
    print $sock "x" x 2000;
    ($got, $eof) = mem_drain($sock, 0.3);
    ok(!$eof, "2000 bytes without a newline wait");
    is(talk($sock, "\r\n"), "CLIENT_ERROR unauthenticated\r\n", "and are then refused");
}

# ---- counters and settings ----
{
    my $sock = $server->new_sock;
    talk($sock, "set foo 0 0 7\r\nfoo bar\r\n");
    my $stats = mem_stats($sock);
    # Earlier: 2 failures, 5 successes, and this one; malformed tokens do not count.
    is($stats->{auth_cmds}, 8, "auth_cmds counts every token checked");
    is($stats->{auth_errors}, 2, "auth_errors counts the failures");
    my $settings = mem_stats($sock, 'settings');
    is($settings->{auth_enabled_ascii}, $authfile, "stats settings names the file");
    is($settings->{auth_enabled_sasl}, 'no', "sasl off");
    is($settings->{binding_protocol}, 'ascii', "-Y makes the protocol ascii");
}

# ---- reload on SIGHUP ----
sub auth_reply {
    my ($token) = @_;
    my $sock = $server->new_sock;
    my $len = length $token;
    return talk($sock, "set x 0 0 $len\r\n$token\r\n");
}
write_file($authfile, "new:pass\n");
kill('HUP', $server->pid);
# The clock event (once a second) does the reload.
my $reloaded = 0;
for (1 .. 50) {
    if (auth_reply("new pass") eq "STORED\r\n") {
        $reloaded = 1;
        last;
    }
    MemcachedTest::sleep(0.1);
}
ok($reloaded, "SIGHUP loads the new file");
is(auth_reply("foo bar"), "CLIENT_ERROR authentication failure\r\n", "old entries are gone");
write_file($authfile, "new:pass\nmalformed\n");
kill('HUP', $server->pid);
MemcachedTest::sleep(2.5);
is(auth_reply("new pass"), "STORED\r\n", "a malformed reload keeps the last good entries");
unlink($authfile);
kill('HUP', $server->pid);
MemcachedTest::sleep(2.5);
is(auth_reply("new pass"), "STORED\r\n", "so does a missing file");

# ---- start-up ----
my $exe = get_memcached_exe();
my @as_root = $< == 0 ? ('-u', 'root') : ();
my $sockpath = "$tmp/never.sock";
my $missing = "$tmp/missing";
my $bad = "$tmp/bad";
write_file($bad, "a:b\nnocolon\n");
write_file("$tmp/good", "a:b\n");
my $enoent = "No such file or directory";
my @cases = (
    [['-Y', $missing, '-s', $sockpath],
        "Could not open authfile [$missing] for reading, error $enoent: $enoent\n", 1],
    [['-Y', $bad, '-s', $sockpath],
        "Authfile [$bad] has a malformed entry. Should be 'user:password'", 1],
    [['-Y', "$tmp/good", '-U', '11999', '-p', '0'],
        "Cannot use UDP with ascii authentication enabled (-U 0 to disable)\n", 64],
    [['-Y', "$tmp/good", '-B', 'binary', '-s', $sockpath],
        "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.\n", 64],
    [['-Y', "$tmp/good", '-B', 'auto', '-s', $sockpath],
        "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.\n", 64],
);
for my $case (@cases) {
    my ($args, $err, $rc) = @$case;
    my $name = join(' ', @$args);
    my $r = run_binary(@$args);
    is($r->{err}, $err, "'$name': stderr");
    is($r->{rc}, $rc, "'$name': exit status $rc");
    ok(!$r->{timed_out}, "'$name': the server did not start");
}

# A listener may not ask for the binary protocol; a negotiating one is ascii.
{
    my $port = free_port();
    my $r = run_binary('-Y', "$tmp/good", '-U', '0', '-p', $port,
                       '-l', "proto[binary]:127.0.0.1");
    like($r->{err}, qr/\ACannot use binary protocol when ascii authentication enabled\n/,
        "proto[binary] listener refused");
    ok(!$r->{timed_out} && $r->{rc} != 0, "and the server stops");

    # Started here, not by new_memcached: its "[" would put a shell between.
    $port = free_port();
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open(STDERR, '>', "$tmp/negotiating.err");
        { no warnings 'exec';
          exec { $exe } $exe, @as_root, '-Y', "$tmp/good", '-U', '0', '-p', $port,
              '-l', "proto[negotiating]:127.0.0.1"; }
        POSIX::_exit(127);
    }
    my $sock;
    for (1 .. 100) {
        $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") and last;
        MemcachedTest::sleep(0.05);
    }
    ok($sock, "proto[negotiating] listener starts");
    is(talk($sock, "version\r\n"), "CLIENT_ERROR unauthenticated\r\n",
        "and asks for ascii auth");
    kill('TERM', $pid);
    waitpid($pid, 0);
    open(my $fh, '<', "$tmp/negotiating.err") or die;
    like(scalar <$fh>,
        qr/^WARNING: negotiating ports are ascii only when ascii authentication enabled$/,
        "with a warning");
}

done_testing();
