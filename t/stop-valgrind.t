#!/usr/bin/env perl
# A start/serve/stop cycle under valgrind for each normal stop (SIGTERM,
# SIGINT, the "shutdown" command) and the graceful one (SIGUSR1): the server
# must exit 0 with no memory error, the teardown at exit included. Leaks at exit are not errors here;
# the C server is clean under the same options.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(slurp);

use File::Temp qw(tempdir);

plan skip_all => "valgrind is not installed (apt-get install valgrind)"
    unless system("valgrind --version >/dev/null 2>&1") == 0;

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $tmp = tempdir(CLEANUP => 1);

sub closed_without_reply {
    my ($sock) = @_;
    my $rin = '';
    vec($rin, fileno($sock), 1) = 1;
    return 0 unless select(my $rout = $rin, undef, undef, 30);
    my $n = sysread($sock, my $buf, 1024);
    return defined $n && $n == 0;
}

# Some traffic on TCP and UDP, with a second client still connected at the
# stop, so connections and listeners all exist when the server goes down.
sub serve {
    my ($server, $label) = @_;
    my $sock = $server->sock;
    print $sock "set foo 0 0 3\r\nbar\r\n";
    is(scalar <$sock>, "STORED\r\n", "$label: set");
    mem_get_is($sock, "foo", "bar", "$label: get");
    my $other = $server->new_sock;
    print $other "version\r\n";
    is(scalar <$other>, "VERSION $version\r\n", "$label: second client");
    my $udp = $server->new_udp_sock;
    # Request id 1, sequence 0, 1 datagram.
    send($udp, pack('nnnn', 1, 0, 1, 0) . "get foo\r\n", 0);
    my $rin = '';
    vec($rin, fileno($udp), 1) = 1;
    my $reply = '';
    recv($udp, $reply, 1500, 0) if select(my $rout = $rin, undef, undef, 30);
    like($reply, qr/VALUE foo 0 3\r\nbar\r\nEND\r\n$/, "$label: UDP get");
    return $other;
}

local $ENV{VALGRIND_TEST} = 1;
local $ENV{VALGRIND_ARGS} = "--quiet --error-exitcode=1 --leak-check=no";

# Side by side, as valgrind makes each start and stop slow.
# [label, signal (none: the shutdown command), expected stderr]
my @cases = (
    ['SIGTERM', 'TERM', ''],
    ['SIGINT', 'INT', ''],
    ['shutdown', undef, ''],
    ['SIGUSR1', 'USR1', "Gracefully stopping\n"],
);
for my $case (@cases) {
    my ($label) = @$case;
    my $err = "$tmp/$label.err";
    my $server = new_memcached("-A -l 127.0.0.1", undef, { stderr => $err });
    my $other = serve($server, $label);
    push(@$case, $server, $other, $err);
}
for my $case (@cases) {
    my ($label, $signal, $want, $server) = @$case;
    if ($signal) {
        # Valgrind runs the server in its own process: this is its pid.
        my $pid = mem_stats($server->sock)->{pid};
        kill($signal, $pid);
    } else {
        my $sock = $server->sock;
        print $sock "shutdown\r\n";
        ok(closed_without_reply($sock), "$label: requester disconnected");
    }
}
for my $case (@cases) {
    my ($label, $signal, $want, $server, $other, $err) = @$case;
    is($server->wait_exit(60), 0, "$label: exit status 0 under valgrind");
    ok(closed_without_reply($other), "$label: other client disconnected");
    is(slurp($err), $want, "$label: no valgrind error");
}

done_testing();
