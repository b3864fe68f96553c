#!/usr/bin/env perl
# The "verbosity" command, and what -v / -vv print on stderr about
# listeners, connections, commands and replies.

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

# Log lines about connections: "<fd ...", ">fd ..." and "fd: ...".
sub conn_lines {
    my ($text) = @_;
    return grep { /^(?:[<>]\d+ |\d+: )/ } split(/\n/, $text);
}

# Wait until the log has a line matching $re; returns the log.
sub wait_log {
    my ($file, $re) = @_;
    my $text = '';
    for (1 .. 250) {
        $text = slurp($file);
        return $text if $text =~ $re;
        MemcachedTest::sleep(0.02);
    }
    return $text;
}

sub new_logged {
    my ($args) = @_;
    my $err = "$tmp/server." . ++$n . ".err";
    my $server = new_memcached($args, undef, { stderr => $err });
    return ($server, $err);
}

# ---------------------------------------------------------------------------
# Replies of "verbosity".

{
    my ($server) = new_logged("");
    my $sock = $server->sock;
    my @cases = (
        ["verbosity 1", "OK\r\n", 1],
        ["verbosity 0", "OK\r\n", 0],
        ["verbosity 2", "OK\r\n", 2],
        ["verbosity 5", "OK\r\n", 2],
        ["verbosity 4294967295", "OK\r\n", 2],
        ["verbosity  1", "OK\r\n", 1],
        ["verbosity 0 extra", "OK\r\n", 0],
        ["verbosity", "CLIENT_ERROR bad command line format\r\n", 0],
        ["verbosity x", "CLIENT_ERROR bad command line format\r\n", 0],
        ["verbosity -1", "CLIENT_ERROR bad command line format\r\n", 0],
        ["verbosity 1x", "CLIENT_ERROR bad command line format\r\n", 0],
        ["verbosity 4294967296", "CLIENT_ERROR bad command line format\r\n", 0],
        ["verbosity\t1", "ERROR\r\n", 0],
        ["VERBOSITY 1", "ERROR\r\n", 0],
    );
    for my $case (@cases) {
        my ($cmd, $reply, $level) = @$case;
        print $sock "$cmd\r\n";
        is(scalar <$sock>, $reply, "'$cmd' replies " . ($reply =~ s/\r\n//r));
        is(mem_stats($sock, 'settings')->{verbosity}, $level, "'$cmd': verbosity is $level");
    }

    # noreply silences the answer, right or wrong.
    print $sock "verbosity 1 noreply\r\nverbosity noreply\r\nversion\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "noreply: no replies to verbosity");
    is(mem_stats($sock, 'settings')->{verbosity}, 1, "'verbosity 1 noreply' still applies");
    print $sock "verbosity 0\r\n";
    is(scalar <$sock>, "OK\r\n", "back to 0");
}

# ---------------------------------------------------------------------------
# -vv on a unix socket.

{
    my ($server, $err) = new_logged("-vv");
    my $sock = $server->sock;
    for my $exchange (
        ["version\r\n", "VERSION $version\r\n"],
        ["version\n", "VERSION $version\r\n"],
        ["bogus cmd\r\n", "ERROR\r\n"],
        ["verbosity 2 noreply\r\nversion\r\n", "VERSION $version\r\n"],
        ["a\n", "CLIENT_ERROR bad command line format\r\n"],
    ) {
        print $sock $exchange->[0];
        is(scalar <$sock>, $exchange->[1], "-vv: reply to " . ($exchange->[0] =~ s/\r?\n.*//sr));
    }
    mem_stats($sock, 'settings');
    print $sock "quit\r\n";
    my $log = wait_log($err, qr/connection closed\.\n/);

    my @lines = conn_lines($log);
    my ($listener) = ($lines[0] // '') =~ /^<(\d+) server listening \(auto-negotiate\)$/;
    ok(defined $listener, "-vv: listener line first") or diag($log);
    my ($c) = ($lines[1] // '') =~ /^<(\d+) new auto-negotiating client connection$/;
    ok(defined $c, "-vv: new connection line") or diag($log);
    $c = 'X' unless defined $c;
    # A bare "\n" ending makes the log drop the last character of the command.
    my @want = (
        "$c: Client using the ascii protocol",
        "<$c version",
        ">$c VERSION $version",
        "<$c versio",
        ">$c VERSION $version",
        "<$c bogus cmd",
        ">$c ERROR",
        "<$c verbosity 2 noreply",
        ">$c NOREPLY OK",
        "<$c version",
        ">$c VERSION $version",
        "<$c ",
        ">$c CLIENT_ERROR bad command line format",
        "<$c stats settings",
        "<$c quit",
        "<$c connection closed.",
    );
    is_deeply([@lines[2 .. $#lines]], \@want, "-vv: command and reply log");

    # A client that connects and leaves without a word.
    my $quiet = $server->new_sock;
    close($quiet);
    $log = wait_log($err, qr/connection closed\.\n(?:.*\n)*<\d+ connection closed\.\n/);
    my @tail = (conn_lines($log))[-2, -1];
    like($tail[0] // '', qr/^<(\d+) new auto-negotiating client connection$/,
        "-vv: silent client logged on connect");
    my ($fd) = ($tail[0] // '') =~ /^<(\d+)/;
    is($tail[1], "<" . ($fd // '?') . " connection closed.", "-vv: and on close");
}

# ---------------------------------------------------------------------------
# -vv with a fixed protocol.

{
    my ($server, $err) = new_logged("-vv -B ascii");
    my $sock = $server->sock;
    print $sock "version\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "-B ascii: version");
    close($sock);
    my @lines = conn_lines(wait_log($err, qr/connection closed\.\n/));
    like($lines[0] // '', qr/^<\d+ server listening \(ascii\)$/, "-B ascii: listener line");
    like($lines[1] // '', qr/^<\d+ new ascii client connection\.$/, "-B ascii: connection line");
    my ($c) = ($lines[1] // '') =~ /^<(\d+)/;
    $c = 'X' unless defined $c;
    is_deeply([@lines[2 .. $#lines]],
        ["<$c version", ">$c VERSION $version", "<$c connection closed."],
        "-B ascii: no protocol detection line");
}

# ---------------------------------------------------------------------------
# -vv with TCP and UDP listeners.

{
    my ($server, $err) = new_logged("-vv -t 2 -l 127.0.0.1");
    ok($server->sock, "tcp+udp server up");
    my @lines = conn_lines(wait_log($err, qr/new auto-negotiating client connection/));
    like($lines[0] // '', qr/^<\d+ server listening \(auto-negotiate\)$/, "tcp listener line");
    my @udp = grep { /^<\d+ server listening \(udp\)$/ } @lines;
    is(scalar @udp, 2, "one udp listener line per thread");
    my @other = grep {
        !/^<\d+ server listening \((?:auto-negotiate|udp)\)$/
        && !/^<\d+ send buffer was \d+, now \d+$/
        && !/^<\d+ new auto-negotiating client connection$/
    } @lines;
    is_deeply(\@other, [], "nothing else logged at startup");
}

# ---------------------------------------------------------------------------
# -v logs no connection events; "verbosity" changes logging at run time.

{
    my ($server, $err) = new_logged("-v");
    my $sock = $server->sock;
    print $sock "version\r\nbogus\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "-v: version");
    is(scalar <$sock>, "ERROR\r\n", "-v: bogus");
    print $sock "verbosity 2\r\n";
    is(scalar <$sock>, "OK\r\n", "-v: raised to 2 at run time");

    my $second = $server->new_sock;
    print $second "version\r\n";
    is(scalar <$second>, "VERSION $version\r\n", "second client served");
    print $second "verbosity 0\r\nversion\r\n";
    is(scalar <$second>, "OK\r\n", "lowered to 0");
    is(scalar <$second>, "VERSION $version\r\n", "still served");
    close($second);
    MemcachedTest::sleep(0.2);

    # The reply to "verbosity 2" is the first thing logged.
    my @lines = conn_lines(slurp($err));
    my ($first) = ($lines[0] // '') =~ /^>(\d+) OK$/;
    ok(defined $first, "-v then verbosity 2: its own reply logged") or diag(explain(\@lines));
    $first = 'X' unless defined $first;
    my ($c) = ($lines[1] // '') =~ /^<(\d+) new auto-negotiating client connection$/;
    ok(defined $c, "-v then verbosity 2: new connection logged");
    $c = 'X' unless defined $c;
    is_deeply(\@lines, [
        ">$first OK",
        "<$c new auto-negotiating client connection",
        "$c: Client using the ascii protocol",
        "<$c version",
        ">$c VERSION $version",
        "<$c verbosity 0",
    ], "logging follows the verbosity command");
}

# ---------------------------------------------------------------------------
# -vvv: every lookup is traced ("> FOUND KEY", "> NOT FOUND", why an item was dropped).

{
    my ($server, $err) = new_logged("-vvv");
    my $sock = $server->sock;
    print $sock "set k 0 0 1\r\nx\r\nget k nope\r\nset e 0 -1 1\r\nx\r\nget e\r\n"
        . "flush_all\r\nget k\r\ndelete k\r\n";
    my @want = ("STORED", "VALUE k 0 1", "x", "END", "STORED", "END", "OK", "END",
                "NOT_FOUND");
    for my $w (@want) {
        is(scalar <$sock>, "$w\r\n", "-vvv: reply $w");
    }
    my $log = wait_log($err, qr/> NOT FOUND k\n(?s:.*)> NOT FOUND k\n/);
    my @traces = $log =~ /^(> (?:FOUND KEY|NOT FOUND) .*)$/mg;
    is_deeply(\@traces, [
        "> NOT FOUND k",
        "> FOUND KEY k",
        "> NOT FOUND nope",
        "> NOT FOUND e",
        "> FOUND KEY e -removed by expire",
        "> NOT FOUND k",
        "> NOT FOUND k",
    ], "-vvv: lookups traced in order (set looks the key up first)");
}

done_testing();
