#!/usr/bin/env perl
# Which connection -c refuses. The check is on the descriptor number
# (refused from maxconns - 1 up), so the refusal point depends on every
# descriptor the server holds before its first client: stdin/out/err, 3 for
# the dispatcher's event base, 5 per worker (C's reserved_fds), and the
# listening sockets (plus each worker's UDP socket with -U). The server is
# started here with nothing but descriptors 0-2 open, so the count is exact.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::UNIX;
use POSIX ();

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $reject = "ERROR Too many open connections\r\n";
my $exe = get_memcached_exe();
my $tmp = tempdir(CLEANUP => 1);
my @as_root = $< == 0 ? ('-u', 'root') : ();
my @pids;

END {
    for my $pid (@pids) {
        kill('KILL', $pid);
        waitpid($pid, 0);
    }
}

# Starts the server with only descriptors 0-2 inherited.
sub start_server {
    my (@args) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>>', "$tmp/server.out");
        open(STDERR, '>>', "$tmp/server.out");
        POSIX::close($_) for 3 .. 1023;
        { no warnings 'exec'; exec { $exe } $exe, @as_root, @args; }
        POSIX::_exit(127);
    }
    push(@pids, $pid);
    return $pid;
}

# The first connection that goes through; failed attempts (nothing
# listening yet) take no descriptor in the server.
sub first_connection {
    my ($connect) = @_;
    for (1 .. 500) {
        my $s = $connect->();
        return $s if $s;
        MemcachedTest::sleep(0.02);
    }
    die "server did not start: " . `cat $tmp/server.out`;
}

# 'accepted' (answers version), 'rejected' (the error line, then closed),
# or what else happened.
sub probe {
    my ($s) = @_;
    my ($data, $rin) = ('', '');
    vec($rin, fileno($s), 1) = 1;
    # A refused client hears at once; an accepted one hears nothing.
    if (select(my $rout = $rin, undef, undef, 0.3)) {
        while (select(my $rout = $rin, undef, undef, 2)) {
            my $n = sysread($s, my $chunk, 4096);
            last unless $n;
            $data .= $chunk;
        }
        return $data eq $reject ? 'rejected' : "odd: '$data' then closed";
    }
    syswrite($s, "version\r\n");
    my $line = <$s>;
    return defined $line && $line eq "VERSION $version\r\n"
        ? 'accepted' : 'odd: ' . (defined $line ? "'$line'" : 'closed');
}

sub stat_of {
    my ($s, $name) = @_;
    return mem_stats($s)->{$name};
}

# [label, threads, maxconns, listen args, connect sub, first refused]
# First refused = maxconns - 1 - (held descriptors) + 1, counting the
# connection used for stats as the first.
my $sock_path = "$tmp/mc.sock";
my $tcp_port = free_port();
my $tcp_port2 = free_port();
my $udp_port = free_port('udp');
my @cases = (
    # 3 + 3 + 5 + 1 unix listener = 12 held: fds 12..18 serve 7 clients.
    ['-t 1 -c 20, unix socket', 1, 20, ['-s', $sock_path],
     sub { IO::Socket::UNIX->new(Peer => $sock_path) }, 8],
    # 3 + 3 + 10 + 1 TCP listener + 2 UDP sockets = 19 held: 19..28 serve 10.
    ['-t 2 -c 30, TCP and UDP', 2, 30,
     ['-l', '127.0.0.1', '-p', $tcp_port, '-U', $udp_port],
     sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tcp_port") }, 11],
    # 3 + 3 + 20 + 1 TCP listener = 27 held: 27..38 serve 12.
    ['-t 4 -c 40, TCP', 4, 40, ['-l', '127.0.0.1', '-p', $tcp_port2, '-U', '0'],
     sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$tcp_port2") }, 13],
);

for my $case (@cases) {
    my ($label, $threads, $maxconns, $listen, $connect, $first_refused) = @$case;
    my $pid = start_server('-t', $threads, '-c', $maxconns, @$listen);
    my $stat = first_connection($connect);
    is(stat_of($stat, 'max_connections'), $maxconns, "$label: max_connections");
    is(stat_of($stat, 'reserved_fds'), 5 * $threads, "$label: reserved_fds");

    my @results = ('accepted');
    my @socks = ($stat);
    for (2 .. $first_refused + 2) {
        my $s = $connect->();
        push(@socks, $s);
        push(@results, $s ? probe($s) : "connect failed: $!");
    }
    my @want = (('accepted') x ($first_refused - 1), ('rejected') x 3);
    is_deeply(\@results, \@want, "$label: connection $first_refused is the first refused")
        or diag(explain(\@results));
    is(stat_of($stat, 'rejected_connections'), 3, "$label: rejected_connections");

    # A client leaving frees its descriptor for the next one.
    my $curr = stat_of($stat, 'curr_connections');
    close($socks[1]);
    for (1 .. 100) {
        last if stat_of($stat, 'curr_connections') < $curr;
        MemcachedTest::sleep(0.02);
    }
    my $again = $connect->();
    is($again ? probe($again) : 'connect failed', 'accepted',
        "$label: after one client left, a new one is served");
    my $next = $connect->();
    is($next ? probe($next) : 'connect failed', 'rejected',
        "$label: and the one after it is refused again");
    is(stat_of($stat, 'rejected_connections'), 4, "$label: rejected_connections again");

    kill('TERM', $pid);
    waitpid($pid, 0);
    is($?, 0, "$label: server stopped");
    @pids = grep { $_ != $pid } @pids;
}

done_testing();
