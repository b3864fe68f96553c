#!/usr/bin/env perl
# debugtime (memcached-debug only): pause, resume and shift the server clock, so expiry can be
# tested without sleeping. The release binary answers ERROR, as C's does.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use IO::Socket::UNIX;

sub cmd {
    my ($sock, $line) = @_;
    print $sock "$line\r\n";
    return scalar <$sock>;
}

my $server = new_memcached();
my $sock = $server->sock;

is(cmd($sock, "debugtime"), "ERROR\r\n", "debugtime needs an argument");
is(cmd($sock, "debugtime x"), "ERROR\r\n", "debugtime with a non-number");
is(cmd($sock, "debugtime pause"), "ERROR\r\n", "only 'p' pauses");
is(cmd($sock, "debugtime 99999999999999999999999"), "ERROR\r\n", "too long a number");

is(cmd($sock, "debugtime p"), "OK\r\n", "pause the clock");
my $u0 = mem_stats($sock)->{uptime};
MemcachedTest::sleep(1.3);
is(mem_stats($sock)->{uptime}, $u0, "a paused clock does not tick");

# C adds the running total of shifts to the clock on every shift.
is(cmd($sock, "debugtime 100"), "OK\r\n", "shift by 100");
is(mem_stats($sock)->{uptime}, $u0 + 100, "clock moved by 100");
is(cmd($sock, "debugtime 5"), "OK\r\n", "shift by 5 more");
is(mem_stats($sock)->{uptime}, $u0 + 100 + 105, "clock moved by the running total");
is(cmd($sock, "debugtime -5"), "OK\r\n", "negative shifts are accepted");
is(mem_stats($sock)->{uptime}, $u0 + 305, "clock moved by the new total");

is(cmd($sock, "debugtime r"), "OK\r\n", "resume the clock");
MemcachedTest::sleep(1.3);
cmp_ok(mem_stats($sock)->{uptime}, '>=', 100, "a resumed clock keeps the total shift");

# The release build has no debug commands. (The harness adds -o relaxed_privileges, which
# only memcached-debug accepts, so this one is started by hand.)
my $path = "/tmp/memcachetest.debugtime.$$";
unlink($path);
my $pid = fork();
if (!$pid) {
    my @root = $< == 0 ? ("-u", "root") : ();
    exec("./timedrun", "60", "./memcached", "-s", $path, @root) or exit(127);
}
my $rs;
for (1 .. 100) {
    $rs = IO::Socket::UNIX->new(Peer => $path) and last;
    MemcachedTest::sleep(0.05);
}
ok($rs, "release memcached started");
is(cmd($rs, "debugtime p"), "ERROR\r\n", "memcached (release) refuses debugtime");
is(cmd($rs, "version"), "VERSION " . ($ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45') . "\r\n",
    "and keeps serving");
kill('TERM', $pid);
waitpid($pid, 0);
unlink($path);

done_testing();
