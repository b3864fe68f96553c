#!/usr/bin/env perl
# "quit": the server closes the connection after flushing earlier replies.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';

# Everything the server sends until it closes the connection or stays quiet
# for $quiet seconds. Returns (data, closed).
sub drain {
    my ($sock, $quiet) = @_;
    my ($data, $rin) = ('', '');
    vec($rin, fileno($sock), 1) = 1;
    while (select(my $rout = $rin, undef, undef, $quiet || 2)) {
        my $n = sysread($sock, my $chunk, 65536);
        return ($data, 1) unless $n;
        $data .= $chunk;
    }
    return ($data, 0);
}

sub check_quit {
    my ($server, $how) = @_;

    for my $request ("quit\r\n", "quit\n", "quit now please\r\n") {
        (my $shown = $request) =~ s/\r?\n\z//;
        my $sock = $server->new_sock;
        syswrite($sock, $request);
        my ($data, $closed) = drain($sock);
        is($data, '', "$how: '$shown' sends nothing");
        ok($closed, "$how: '$shown' closes the connection");
    }

    # Replies to earlier commands are flushed; later commands are dropped.
    my $sock = $server->new_sock;
    syswrite($sock, "version\r\nquit\r\nversion\r\n");
    my ($data, $closed) = drain($sock);
    is($data, "VERSION $version\r\n", "$how: reply before quit is sent");
    ok($closed, "$how: then the connection is closed");

    for my $not ("QUIT", "quits", "qui") {
        my $s = $server->new_sock;
        print $s "$not\r\n";
        is(scalar <$s>, "ERROR\r\n", "$how: '$not' is not quit");
    }
}

my $server = new_memcached();
check_quit($server, "unix socket");
check_quit(new_memcached("-l 127.0.0.1"), "tcp");

# The closed connections are gone from the counters.
{
    my $sock = $server->sock;
    my $stats;
    for (1 .. 100) {
        $stats = mem_stats($sock);
        last if $stats->{curr_connections} == 1;
        MemcachedTest::sleep(0.02);
    }
    is($stats->{curr_connections}, 1, "only the stats connection is left");
}

done_testing();
