#!/usr/bin/env perl
# Signals: SIGINT/SIGTERM stop the server, SIGUSR1 stops it gracefully,
# SIGHUP does not stop it, a client vanishing mid-reply (SIGPIPE) is harmless.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(slurp);

use File::Temp qw(tempdir);

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $tmp = tempdir(CLEANUP => 1);
my $n = 0;

sub alive {
    my ($server) = @_;
    my $sock = $server->new_sock or return 0;
    print $sock "version\r\n";
    my $line = <$sock>;
    return defined $line && $line eq "VERSION $version\r\n";
}

# The C server notices a stop request on its next clock tick, so a stop can
# take a second: all stop cases run side by side.
my @cases = (
    # [label, signal, server args, send through timedrun, expected stderr]
    ['SIGINT -v', 'INT', '-v', 0, "Exiting normally\n"],
    ['SIGINT', 'INT', '', 0, ''],
    ['SIGINT via timedrun', 'INT', '-v', 1, "Exiting normally\n"],
    ['SIGTERM -v', 'TERM', '-v', 0, "Exiting normally\n"],
    ['SIGTERM', 'TERM', '', 0, ''],
    ['SIGTERM via timedrun', 'TERM', '-v', 1, "Exiting normally\n"],
    ['SIGUSR1', 'USR1', '', 0, "Gracefully stopping\n"],
    ['SIGUSR1 via timedrun', 'USR1', '', 1, "Gracefully stopping\n"],
);
for my $case (@cases) {
    my ($label, $signal, $args) = @$case;
    my $err = "$tmp/server." . ++$n . ".err";
    my $server = new_memcached($args, undef, { stderr => $err });
    my $pid = mem_stats($server->sock)->{pid};
    push(@$case, $server, $pid, $err);
}
for my $case (@cases) {
    my ($label, $signal, $args, $via, $want, $server, $pid) = @$case;
    kill($signal, $via ? $server->pid : $pid);
}
for my $case (@cases) {
    my ($label, $signal, $args, $via, $want, $server, $pid, $err) = @$case;
    is($server->wait_exit(15), 0, "$label: exit status 0");
    is(slurp($err), $want, "$label: stderr");
}

{
    my $g = new_memcached("", undef, { stderr => "$tmp/graceful.err" });
    my $t = new_memcached("-v", undef, { stderr => "$tmp/stop.err" });
    $g->graceful_stop;
    $t->stop;
    is($g->wait_exit(15), 0, "graceful_stop: exit status 0");
    is(slurp("$tmp/graceful.err"), "Gracefully stopping\n", "graceful_stop: message");
    is($t->wait_exit(15), 0, "stop: exit status 0");
    is(slurp("$tmp/stop.err"), "Exiting normally\n", "stop: message");
}

{
    my $err = "$tmp/hup.err";
    my $server = new_memcached("-v", undef, { stderr => $err });
    my $pid = mem_stats($server->sock)->{pid};
    kill('HUP', $pid);
    MemcachedTest::sleep(0.3);
    ok($server->is_running, "SIGHUP does not stop the server");
    ok(alive($server), "server answers after SIGHUP");
    $server->reload;
    MemcachedTest::sleep(0.3);
    ok(alive($server), "server answers after reload through timedrun");
    is(slurp($err), '', "SIGHUP prints nothing");
    $server->stop;
    is($server->wait_exit(15), 0, "SIGTERM after SIGHUP still stops it");
}

# A client that disappears while the server writes a large reply.
{
    my $server = new_memcached();
    for (1 .. 3) {
        my $sock = $server->new_sock;
        syswrite($sock, "stats\r\n" x 300);
        close($sock);
    }
    MemcachedTest::sleep(0.3);
    ok($server->is_running, "server survives clients closing mid-reply");
    ok(alive($server), "server answers after broken pipes");
}

done_testing();
