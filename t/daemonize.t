#!/usr/bin/env perl
# -d (daemonize) and -P (pid file).

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use Cwd qw(getcwd);
use File::Temp qw(tempdir);

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $tmp = tempdir(CLEANUP => 1);
my @daemons;

# Daemons are nobody's child: make sure none outlives the test.
END {
    kill('KILL', $_) for grep { kill(0, $_) } @daemons;
}

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return;
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

sub wait_gone {
    my ($pid) = @_;
    for (1 .. 300) {
        return 1 unless kill(0, $pid);
        MemcachedTest::sleep(0.02);
    }
    return 0;
}

my $has_proc = -d "/proc/$$";

{
    my $pidfile = "$tmp/daemon.pid";
    my $server = new_memcached("-d -P $pidfile");
    my $sock = $server->sock;
    ok($sock, "connected to the daemon");

    my $content = slurp($pidfile);
    like($content, qr/\A\d+\n\z/, "pid file holds a pid and a newline");
    chomp(my $pid = $content);
    push(@daemons, $pid);
    ok(kill(0, $pid), "daemon is running");
    is(mem_stats($sock)->{pid}, $pid, "stats pid matches the pid file");
    isnt($pid, $server->pid, "daemon is not the launched process");
    is($server->wait_exit(5), 0, "launched process exits 0 once the daemon is off");

    SKIP: {
        skip "no /proc", 5 unless $has_proc;
        my $stat = slurp("/proc/$pid/stat");
        my @f = split(' ', ($stat =~ /\)\s+(.*)/)[0]);
        # fields after the name: state ppid pgrp session
        is($f[3], $pid, "daemon leads its own session");
        is(readlink("/proc/$pid/cwd"), "/", "daemon changed to /");
        for my $fd (0 .. 2) {
            is(readlink("/proc/$pid/fd/$fd"), "/dev/null", "fd $fd is /dev/null");
        }
    }

    ok($server->new_sock, "new connections are accepted");
    ok(kill('TERM', $pid), "SIGTERM sent to the daemon");
    ok(wait_gone($pid), "daemon stopped");
    ok(!-e $pidfile, "daemon removed its pid file");
    ok(!$server->new_sock, "no more connections");
}

# -v keeps stderr open in the daemon.
SKIP: {
    skip "no /proc", 2 unless $has_proc;
    my $pidfile = "$tmp/verbose.pid";
    my $err = "$tmp/verbose.err";
    my $server = new_memcached("-d -v -P $pidfile", undef, { stderr => $err });
    chomp(my $pid = slurp($pidfile));
    push(@daemons, $pid);
    is(readlink("/proc/$pid/fd/2"), $err, "-d -v: stderr kept");
    kill('TERM', $pid);
    ok(wait_gone($pid), "-d -v: daemon stopped");
}

# -P without -d.
{
    my $pidfile = "$tmp/plain.pid";
    my $server = new_memcached("-P $pidfile");
    my $pid = mem_stats($server->sock)->{pid};
    is(slurp($pidfile), "$pid\n", "-P without -d writes the pid file");
    ok(!-e "$pidfile.tmp", "no temporary pid file left");
    $server->stop;
    $server->wait_exit(10);
    ok(-e $pidfile, "-P without -d leaves the pid file at exit");
}

# A pid file naming a running process is reported, then replaced.
{
    my $pidfile = "$tmp/running.pid";
    open(my $fh, '>', $pidfile) or die;
    print $fh "$$\n";
    close($fh);
    my $err = "$tmp/running.err";
    my $server = new_memcached("-P $pidfile", undef, { stderr => $err });
    my $pid = mem_stats($server->sock)->{pid};
    is(slurp($err), "WARNING: The pid file contained the following (running) pid: $$\n",
        "warning about a running pid");
    is(slurp($pidfile), "$pid\n", "pid file replaced");
}

# A pid file that cannot be written does not stop the server.
{
    my $pidfile = "$tmp/no-such-dir/x.pid";
    my $err = "$tmp/unwritable.err";
    my $server = new_memcached("-P $pidfile", undef, { stderr => $err });
    my $sock = $server->sock;
    print $sock "version\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "server runs without its pid file");
    is(slurp($err),
        "Could not open the pid file $pidfile.tmp for writing: No such file or directory\n",
        "pid file error message");
}

done_testing();
