#!/usr/bin/env perl
# scripts/systemd-memcached-wrapper: a Debian-style configuration file (one option per line,
# "#" comments, blank lines, "-d" dropped, "logfile PATH") starts the server in the
# foreground, the wrapper's process becoming the server's.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);

my $wrapper = "$Bin/../scripts/systemd-memcached-wrapper";
my $tmp = tempdir(CLEANUP => 1);
my $port = free_port();
my $log = "$tmp/memcached.log";
my $conf = "$tmp/memcached.conf";
my @root = $< == 0 ? ("-u root") : ();
open(my $fh, '>', $conf) or die;
print $fh <<"CONF";
# a comment line
-d

logfile $log
-m 32   # memory, with a trailing comment
-p $port
  -l 127.0.0.1
-U 0
-o idle_timeout=5,hash_algorithm=jenkins
-vv
@root
CONF
close($fh);

my $pid = fork();
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    $ENV{MEMCACHED} = get_memcached_exe();
    exec($wrapper, $conf) or POSIX::_exit(127);
}
my $sock;
for (1 .. 100) {
    $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") and last;
    MemcachedTest::sleep(0.05);
}
ok($sock, "the server listens on the configured port");
my $s = $sock ? mem_stats($sock, 'settings') : {};
is($s->{maxbytes}, 32 * 1024 * 1024, "-m with a trailing comment");
is($s->{inter}, '127.0.0.1', "an indented line");
is($s->{idle_timeout}, 5, "-o with several options");
is($s->{hash_algorithm}, 'jenkins', "the second of them");
is(waitpid($pid, WNOHANG), 0, "-d was dropped: the server stays in the foreground");
my $stats = $sock ? mem_stats($sock) : {};
is($stats->{pid}, $pid, "the wrapper's process is the server (exec)");
kill('TERM', $pid);
waitpid($pid, 0);
open(my $lf, '<', $log) or die "no log file";
my $text = do { local $/; <$lf> };
like($text, qr/<\d+ stats settings/, "-vv output went to the logfile");
done_testing();
