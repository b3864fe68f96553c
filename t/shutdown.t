#!/usr/bin/env perl
# The "shutdown" command: disabled by default, enabled with -A; plain and
# graceful modes stop the server with exit status 0.

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

sub closed_without_reply {
    my ($sock) = @_;
    my $rin = '';
    vec($rin, fileno($sock), 1) = 1;
    return 0 unless select(my $rout = $rin, undef, undef, 5);
    my $n = sysread($sock, my $buf, 1024);
    return defined $n && $n == 0;
}

# Disabled (default).
{
    my $server = new_memcached();
    my $sock = $server->sock;
    for my $cmd ("shutdown", "shutdown graceful", "shutdown foo", "shutdown GRACEFUL") {
        print $sock "$cmd\r\n";
        is(scalar <$sock>, "SERVER_ERROR: shutdown not enabled\r\n", "'$cmd' without -A");
    }
    print $sock "shutdown noreply\r\nversion\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "noreply hides the error");
    ok($server->is_running, "server still running");
    is(mem_stats($sock, 'settings')->{shutdown_command}, 'no', "shutdown_command no");
}

# Enabled, bad modes.
{
    my $server = new_memcached("-A");
    my $sock = $server->sock;
    is(mem_stats($sock, 'settings')->{shutdown_command}, 'yes', "-A: shutdown_command yes");
    for my $cmd ("shutdown foo", "shutdown GRACEFUL", "shutdown graceful now",
                 "shutdown  graceful x", "shutdown foo bar") {
        print $sock "$cmd\r\n";
        is(scalar <$sock>, "CLIENT_ERROR invalid shutdown mode\r\n", "-A: '$cmd' is invalid");
    }
    print $sock "shutdown noreply\r\nversion\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "-A: 'shutdown noreply' is an invalid mode, silenced");
    ok($server->is_running, "server still running after invalid modes");
}

# Plain shutdown.
for my $verbose ('', '-v') {
    my $err = "$tmp/plain$verbose.err";
    my $server = new_memcached("-A $verbose", undef, { stderr => $err });
    my $sock = $server->sock;
    my $other = $server->new_sock;
    print $other "version\r\n";
    is(scalar <$other>, "VERSION $version\r\n", "second client connected");
    print $sock "shutdown\r\n";
    ok(closed_without_reply($sock), "shutdown$verbose: requester disconnected without reply");
    my $status = $server->wait_exit(10);
    is($status, 0, "shutdown$verbose: server exits with status 0");
    ok(closed_without_reply($other), "shutdown$verbose: other client disconnected");
    if ($verbose) {
        is(slurp($err), "Exiting normally\n", "-v: 'Exiting normally' on stderr");
    } else {
        is(slurp($err), '', "quiet server prints nothing");
    }
}

# Graceful shutdown.
{
    my $err = "$tmp/graceful.err";
    my $server = new_memcached("-A", undef, { stderr => $err });
    my $sock = $server->sock;
    print $sock "shutdown graceful\r\n";
    ok(closed_without_reply($sock), "graceful: requester disconnected without reply");
    is($server->wait_exit(10), 0, "graceful: server exits with status 0");
    is(slurp($err), "Gracefully stopping\n", "graceful: 'Gracefully stopping' on stderr");
}

done_testing();
