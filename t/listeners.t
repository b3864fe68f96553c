#!/usr/bin/env perl
# Listening sockets: -p, -U, -l (lists, ports, protocol and tag prefixes),
# ephemeral ports and the MEMCACHED_PORT_FILENAME report.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use Cwd qw(getcwd);
use File::Temp qw(tempdir);
use IO::Socket::INET;

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $tmp = tempdir(CLEANUP => 1);
my $exe = get_memcached_exe();
my $timedrun = getcwd() . "/timedrun";
my @as_root = $< == 0 ? ('-u', 'root') : ();
my $n = 0;

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return;
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

# Start the server with exactly these arguments (the harness would add -p/-U)
# and wait for its port report. Returns (handle, report text, stderr file).
sub launch {
    my (@args) = @_;
    $n++;
    my $ports = "$tmp/ports.$n";
    my $err = "$tmp/stderr.$n";
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $ENV{MEMCACHED_PORT_FILENAME} = $ports;
        open(STDERR, '>', $err);
        open(STDOUT, '>&', \*STDERR);
        { no warnings 'exec'; exec($timedrun, 30, $exe, @as_root, '-o', 'relaxed_privileges', @args); }
        POSIX::_exit(127);
    }
    my $server = Memcached::Handle->new(pid => $pid, host => '127.0.0.1');
    for (1 .. 500) {
        last if -e $ports || !$server->is_running;
        MemcachedTest::sleep(0.02);
    }
    return ($server, slurp($ports), $err);
}

sub talks {
    my ($host, $port) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => "$host:$port") or return 0;
    print $sock "version\r\n";
    my $line = <$sock>;
    return defined $line && $line eq "VERSION $version\r\n";
}

# True if a UDP socket is bound to the port on that address.
sub udp_taken {
    my ($host, $port) = @_;
    my $probe = IO::Socket::INET->new(LocalAddr => $host, LocalPort => $port, Proto => 'udp');
    return $probe ? 0 : 1;
}

# ---------------------------------------------------------------------------
# Port report with ephemeral ports.

{
    my ($server, $report) = launch('-p', '-1', '-U', '-1', '-l', '127.0.0.1');
    my ($tcp, $udp) = ($report // '') =~ /\ATCP INET: (\d+)\nUDP INET: (\d+)\n\z/;
    ok(defined $tcp, "report lists one TCP and one UDP port") or diag($report);
    ok(!-e "$tmp/ports.$n.lck", "no lock file left behind");
    ok($tcp && talks('127.0.0.1', $tcp), "served on the ephemeral TCP port");
    ok($udp && udp_taken('127.0.0.1', $udp), "UDP socket bound on the ephemeral UDP port");
}

{
    my ($server, $report) = launch('-p', '-1', '-U', '0', '-l', '127.0.0.1,127.0.0.2');
    my @ports = ($report // '') =~ /^TCP INET: (\d+)$/mg;
    is(scalar @ports, 2, "two interfaces, two TCP ports") or diag($report);
    unlike($report // '', qr/UDP/, "-U 0: no UDP port");
    ok(talks('127.0.0.1', $ports[0] || 1), "served on the first interface");
    ok(talks('127.0.0.2', $ports[1] || 1), "served on the second interface");
}

{
    my $port = free_port();
    my ($server, $report) = launch('-U', $port, '-l', '127.0.0.1');
    is($report, "TCP INET: $port\nUDP INET: $port\n", "-U alone sets the TCP port too");
    ok(talks('127.0.0.1', $port), "served on that TCP port");
}

{
    my ($server, $report) = launch('-p', '0', '-U', '-1', '-l', '127.0.0.1');
    like($report // '', qr/\AUDP INET: \d+\n\z/, "-p 0: UDP only");
}

{
    my ($server, $report) = launch('-p', '-1', '-U', '0');
    my ($port) = ($report // '') =~ /^TCP INET: (\d+)$/m;
    ok(defined $port, "no -l: IPv4 wildcard listener") or diag($report);
    my @other = grep { !/^TCP INET6?: \d+$/ } split(/\n/, $report // '');
    is_deeply(\@other, [], "only TCP ports reported");
    ok($port && talks('127.0.0.1', $port), "served through the wildcard listener");
}

{
    my $port = free_port();
    my ($server, $report) = launch('-p', '-1', '-U', '-1', '-l', "127.0.0.1:$port");
    is($report, "TCP INET: $port\nUDP INET: $port\n", "-l address:port overrides -p and -U");
}

# ---------------------------------------------------------------------------
# Through the harness.

{
    my $server = new_memcached("-l 127.0.0.1");
    ok(talks('127.0.0.1', $server->port), "-l 127.0.0.1 -p: served");
    ok(udp_taken('127.0.0.1', $server->udpport), "-U: UDP socket bound");
    is(mem_stats($server->sock, 'settings')->{udpport}, $server->udpport, "udpport setting");
}

{
    my $server = new_memcached("-l 127.0.0.1 -U 0");
    is(mem_stats($server->sock, 'settings')->{udpport}, 0, "-U 0: udpport 0");
}

{
    my $server = new_memcached("-l 127.0.0.1 -l 127.0.0.1 -l 127.0.0.2");
    is(mem_stats($server->sock, 'settings')->{inter}, "127.0.0.1,127.0.0.2",
        "repeated -l are joined, duplicates dropped");
    ok(talks('127.0.0.2', $server->port), "served on the second -l");
}

{
    my ($port, $other) = (free_port(), free_port());
    my ($server, $report) = launch('-p', $other, '-U', '0', '-l', "127.0.0.1:$port");
    ok(talks('127.0.0.1', $port), "-l with a port listens there");
    ok(!talks('127.0.0.1', $other), "... and not on -p");
}

# ---------------------------------------------------------------------------
# Protocol and tag prefixes in -l.

{
    my ($p1, $p2) = (free_port(), free_port());
    my ($server, $report, $err) = launch('-vv', '-U', '0', '-l',
        "proto[binary]:tag[svc]:127.0.0.1:$p1,proto[ascii]:127.0.0.1:$p2");
    is($report, "TCP INET: $p1\nTCP INET: $p2\n", "prefixed listeners on their ports");
    ok(talks('127.0.0.1', $p2), "proto[ascii] listener serves text");
    my @listening = grep { /server listening/ } split(/\n/, slurp($err));
    like($listening[0] // '', qr/^<\d+ server listening \(binary\)$/, "proto[binary] listener");
    like($listening[1] // '', qr/^<\d+ server listening \(ascii\)$/, "proto[ascii] listener");
}

my @bad_listeners = (
    ["tag[abcdefghi]:127.0.0.1:1", qr/\AListener tags must be between 1 and 8 characters: "abcdefghi"\n/],
    ["tag[]:127.0.0.1:1", qr/\AListener tags must be between 1 and 8 characters: ""\n/],
    ["notls:127.0.0.1:1", qr/\A'notls' option is valid only when SSL is enabled\n/],
    ["127.0.0.1:notaport", qr/\AInvalid port number: "notaport"\n/],
);
for my $case (@bad_listeners) {
    my ($spec, $re) = @$case;
    my $out = `$exe @as_root -U 0 -l '$spec' 2>&1 >/dev/null`;
    is($? >> 8, 71, "-l $spec: exit code 71");
    like($out, $re, "-l $spec: message");
    like($out, qr/^failed to listen on one of interface\(s\) \Q$spec\E: /m, "-l $spec: listen failure");
}

done_testing();
