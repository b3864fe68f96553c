#!/usr/bin/env perl
# -o idle_timeout: idle TCP clients are disconnected and counted in
# idle_kicks; active clients and unix socket clients are left alone.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(slurp);

use File::Temp qw(tempdir);
use Time::HiRes qw(time);

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $tmp = tempdir(CLEANUP => 1);
my $timeout = 2;

# Seconds until the server closes $sock (undef if still open after $limit).
sub time_to_close {
    my ($sock, $start, $limit) = @_;
    my $rin = '';
    vec($rin, fileno($sock), 1) = 1;
    while (time() - $start < $limit) {
        next unless select(my $rout = $rin, undef, undef, 0.1);
        my $n = sysread($sock, my $buf, 1024);
        return time() - $start if defined $n && $n == 0;
    }
    return;
}

my $err = "$tmp/idle.err";
my $server = new_memcached("-vv -o idle_timeout=$timeout -l 127.0.0.1", undef,
    { stderr => $err });
my $unix = new_memcached("-o idle_timeout=1");
my $sock = $server->sock;

my $stats = mem_stats($sock);
is($stats->{idle_kicks}, 0, "idle_kicks starts at 0");
is(mem_stats($sock, 'settings')->{idle_timeout}, $timeout, "idle_timeout setting");

my $start = time();
my $silent = $server->new_sock;         # never says anything
my $partial = $server->new_sock;        # sends half a command
print $partial "vers";
my $chatty = $server->new_sock;         # keeps talking
my $local = $unix->sock;                # unix socket: never kicked

# Keep one client busy while the others sit idle.
my $answers = 0;
while (time() - $start < $timeout + 1.5) {
    print $chatty "version\r\n";
    my $line = <$chatty>;
    $answers++ if defined $line && $line eq "VERSION $version\r\n";
    MemcachedTest::sleep(0.25);
}
ok($answers > 5, "active client keeps being served");

my $silent_closed = time_to_close($silent, $start, $timeout + 4);
ok(defined $silent_closed, "idle client is disconnected");
cmp_ok($silent_closed || 0, '>=', $timeout - 0.5, "... not before the timeout");
ok(defined time_to_close($partial, $start, $timeout + 4),
    "client with an unfinished command is disconnected too");

print $chatty "version\r\n";
is(scalar <$chatty>, "VERSION $version\r\n", "active client still connected");

print $local "version\r\n";
is(scalar <$local>, "VERSION $version\r\n", "unix socket client is not timed out");

# The original stats connection was idle as well.
$stats = mem_stats($server->new_sock);
is($stats->{idle_kicks}, 3, "idle_kicks: the silent, the partial and the first client");

like(slurp($err), qr/^Closing idle fd (\d+)\n<\1 connection closed\.$/m,
    "-vv logs the idle close");

done_testing();
