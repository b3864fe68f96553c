#!/usr/bin/env perl
# -c (maxconns): connections over the limit are told
# "ERROR Too many open connections" and closed, and counted in
# rejected_connections; the server keeps serving the others.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $maxconns = 100;
my $reject = "ERROR Too many open connections\r\n";

# What the server sent on a connection we never wrote to, waiting up to
# $wait seconds for the first byte: (data, closed).
sub unsolicited {
    my ($sock, $wait) = @_;
    my ($data, $rin) = ('', '');
    vec($rin, fileno($sock), 1) = 1;
    while (select(my $rout = $rin, undef, undef, $wait)) {
        my $n = sysread($sock, my $chunk, 4096);
        return ($data, 1) unless $n;
        $data .= $chunk;
        $wait = 2;    # the close follows the message
    }
    return ($data, 0);
}

for my $how ('unix socket', 'tcp') {
    my $server = new_memcached($how eq 'tcp'
        ? "-c $maxconns -l 127.0.0.1" : "-c $maxconns");
    my $stat = $server->sock;
    my $before = mem_stats($stat);
    is($before->{max_connections}, $maxconns, "$how: max_connections");
    is($before->{rejected_connections}, 0, "$how: nothing rejected yet");
    is(mem_stats($stat, 'settings')->{maxconns}, $maxconns, "$how: maxconns setting");

    # Connect more clients than the limit allows, without sending anything.
    my @socks;
    for (1 .. $maxconns + 5) {
        my $s = $server->new_sock;
        push(@socks, $s) if $s;
    }
    is(scalar @socks, $maxconns + 5, "$how: all connects went through");

    # Rejected clients are told so at once; accepted ones hear nothing.
    my (@accepted, @rejected, @odd);
    my $first_wait = 1;
    for my $s (@socks) {
        my ($data, $closed) = unsolicited($s, $first_wait);
        if ($data eq '' && !$closed) {
            push(@accepted, $s);
        } elsif ($data eq $reject && $closed) {
            push(@rejected, $s);
        } else {
            push(@odd, [$data, $closed]);
        }
        $first_wait = @rejected ? 0.5 : 0.01;
    }
    is(scalar @odd, 0, "$how: each client was either served or rejected")
        or diag(explain(\@odd));
    cmp_ok(scalar @rejected, '>', 0, "$how: clients over the limit were rejected");
    cmp_ok(scalar @accepted, '>', 0, "$how: clients under the limit were accepted");
    cmp_ok(scalar @accepted + 1, '<', $maxconns, "$how: fewer clients than maxconns served");

    # Rejection is by position: once it starts, every later client is refused.
    my %is_rejected = map { fileno($_) => 1 } @rejected;
    my $first_rejected;
    for my $i (0 .. $#socks) {
        next unless $is_rejected{fileno($socks[$i])};
        $first_rejected = $i;
        last;
    }
    is(scalar(grep { !$is_rejected{fileno($_)} } @socks[$first_rejected .. $#socks]), 0,
        "$how: all clients after the first rejected one were rejected");

    my $ok = grep {
        print $_ "version\r\n";
        my $line = <$_>;
        defined $line && $line eq "VERSION $version\r\n";
    } @accepted;
    is($ok, scalar @accepted, "$how: accepted clients are served");

    my $after = mem_stats($stat);
    is($after->{rejected_connections}, scalar @rejected,
        "$how: rejected_connections counts the rejected clients");
    is($after->{curr_connections}, $before->{curr_connections} + scalar(@accepted),
        "$how: curr_connections counts the served clients");

    # Freeing connections makes room again.
    close($_) for @rejected, splice(@accepted, 0, 5);
    my $fresh;
    for (1 .. 50) {
        my $s = $server->new_sock;
        my ($data, $closed) = unsolicited($s, 0.1);
        if ($data eq '' && !$closed) {
            $fresh = $s;
            last;
        }
        MemcachedTest::sleep(0.05);
    }
    ok($fresh, "$how: a new client is accepted after others left");
    if ($fresh) {
        print $fresh "version\r\n";
        is(scalar <$fresh>, "VERSION $version\r\n", "$how: and served");
    } else {
        fail("$how: and served");
    }
    close($_) for @accepted;
}

# With maxconns_fast off, the counter is not reported at all.
{
    my $server = new_memcached("-c $maxconns -o no_maxconns_fast");
    my $stats = mem_stats($server->sock);
    ok(!exists $stats->{rejected_connections}, "no rejected_connections without maxconns_fast");
    is(mem_stats($server->sock, 'settings')->{maxconns_fast}, 'no', "maxconns_fast no");
}

done_testing();
