#!/usr/bin/env perl
# stats detail on|off|dump (per-prefix counters, -D delimiter, -X), stats cachedump,
# stats conns, and how `stats` matches subcommands, all as C 1.6.45 answers them.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

sub lines_until_end {
    my ($sock) = @_;
    my @l;
    while (defined(my $x = <$sock>)) {
        last if $x eq "END\r\n";
        push @l, $x;
    }
    return @l;
}

my $server = new_memcached();
my $sock = $server->sock;

# ---- stats detail ----
is(mem_request($sock, "stats detail\r\n", 1),
   "CLIENT_ERROR usage: stats detail on|off|dump\r\n", "detail without argument");
is(mem_request($sock, "stats detail bogus\r\n", 1),
   "CLIENT_ERROR usage: stats detail on|off|dump\r\n", "detail with a bad argument");
is(mem_request($sock, "stats detail dump\r\n", 1), "END\r\n", "nothing recorded yet");
is(mem_request($sock, "stats detail o\r\n", 1), "OK\r\n", "'o' means on");
is(mem_stats($sock, "settings")->{detail_enabled}, "yes", "detail_enabled yes");

print $sock "set a:1 0 0 1\r\nx\r\n";
is(scalar <$sock>, "STORED\r\n", "set a:1");
print $sock "get a:1 b:2 a:3 nokey\r\n";
is(scalar <$sock>, "VALUE a:1 0 1\r\n", "hit");
is(scalar <$sock>, "x\r\n", "value");
is(scalar <$sock>, "END\r\n", "end");
is(mem_request($sock, "delete b:2\r\n", 1), "NOT_FOUND\r\n", "delete b:2");
print $sock "set ab:1 0 0 1\r\nx\r\n";
is(scalar <$sock>, "STORED\r\n", "set ab:1");
is(mem_request($sock, "get a:9\r\n", 1), "END\r\n", "miss on a:9");
# In the order of the table's hash buckets.
is(mem_request($sock, "stats detail dump\r\n", 4),
   "PREFIX b get 1 hit 0 set 0 del 1\r\n"
   . "PREFIX ab get 0 hit 0 set 1 del 0\r\n"
   . "PREFIX a get 3 hit 1 set 1 del 0\r\n"
   . "END\r\n", "per-prefix counts");
is(mem_request($sock, "stats d off\r\n", 1), "OK\r\n", "'stats d off' is detail off");
is(mem_request($sock, "get z:1\r\n", 1), "END\r\n", "a miss with detail off");
is(scalar(() = mem_request($sock, "stats detail dump\r\n", 4) =~ /PREFIX/g), 3,
   "nothing counted while off");
is(mem_request($sock, "stats reset\r\n", 1), "RESET\r\n", "reset");
is(mem_request($sock, "stats detail dump\r\n", 1), "END\r\n", "reset forgets prefixes");

# -D sets the delimiter and turns detail on.
{
    my $srv = new_memcached("-D /");
    my $c = $srv->sock;
    is(mem_stats($c, "settings")->{detail_enabled}, "yes", "-D: detail on");
    is(mem_stats($c, "settings")->{stat_key_prefix}, "/", "-D: delimiter");
    print $c "set u/1 0 0 1\r\nx\r\nset u:1 0 0 1\r\nx\r\n";
    <$c> for 1 .. 2;
    is(mem_request($c, "stats detail dump\r\n", 2),
       "PREFIX u get 0 hit 0 set 1 del 0\r\nEND\r\n", "-D: only keys with the delimiter");
}

# ---- stats cachedump (of COLD: in flat mode every item is there) ----
my $flat = new_memcached("-o no_lru_maintainer");
$sock = $flat->sock;
print $sock "set k1 0 0 1\r\nx\r\nset k2 0 100 2\r\nyy\r\n";
<$sock> for 1 .. 2;
print $sock "stats cachedump 1 0\r\n";
my @dump = lines_until_end($sock);
like($dump[0], qr/^ITEM k2 \[2 b; \d+ s\]\r\n$/, "newest first, with its expiry time");
my ($exp) = $dump[0] =~ /; (\d+) s/;
cmp_ok(abs($exp - (time() + 100)), '<=', 2, "expiry as a unix time");
is($dump[1], "ITEM k1 [1 b; 0 s]\r\n", "no expiry shows 0");
is(mem_request($sock, "stats cachedump 1 1\r\n", 2), "$dump[0]END\r\n", "limit 1");
is(mem_request($sock, "stats cachedump 0 0\r\n", 1), "END\r\n", "class 0 is empty");
is(mem_request($sock, "stats cachedump 63 0\r\n", 1), "END\r\n", "an unused class");
is(mem_request($sock, "stats cachedump 64 0\r\n", 1), "CLIENT_ERROR Illegal slab id\r\n",
   "class 64");
is(mem_request($sock, "stats cachedump x 0\r\n", 1),
   "CLIENT_ERROR bad command line format\r\n", "bad class");
is(mem_request($sock, "stats cachedump 1\r\n", 1), "CLIENT_ERROR bad command line\r\n",
   "missing limit");
is(mem_request($sock, "stats c\r\n", 1), "CLIENT_ERROR bad command line\r\n",
   "'stats c' is cachedump");

# ---- subcommand matching ----
is(mem_request($sock, "stats r\r\n", 1), "RESET\r\n", "'stats r' is reset");
print $sock "stats s\r\n";
my @set = lines_until_end($sock);
is($set[0], "STAT maxbytes 67108864\r\n", "'stats s' is settings");
is(mem_request($sock, "stats sizes_enable\r\n", 1), "ERROR\r\n", "unknown subcommand");
is(mem_request($sock, "stats it\r\n", 1), "ERROR\r\n", "items must be spelled out");

# ---- -X: dumps disabled ----
{
    my $srv = new_memcached("-X");
    my $c = $srv->sock;
    is(mem_request($c, "stats detail on\r\n", 1), "CLIENT_ERROR stats detail not allowed\r\n",
       "-X: no detail");
    is(mem_request($c, "stats cachedump 1 0\r\n", 1),
       "CLIENT_ERROR stats cachedump not allowed\r\n", "-X: no cachedump");
}

# ---- stats conns ----
{
    my $srv = new_memcached("-l 127.0.0.1 -U 0 -t 2");
    my $c = $srv->sock;
    my $other = $srv->new_sock;
    print $other "version\r\n";
    like(scalar <$other>, qr/^VERSION/, "second client");
    print $c "stats conns\r\n";
    my @l = lines_until_end($c);
    my %by_fd;
    for (@l) {
        like($_, qr/^STAT (\d+):(\w+) (.*)\r\n$/, "line format: $_");
        my ($fd, $k, $v) = /^STAT (\d+):(\w+) (.*)\r\n$/;
        $by_fd{$fd}{$k} = $v;
    }
    my @listen = grep { $by_fd{$_}{state} eq 'conn_listening' } keys %by_fd;
    is(scalar @listen, 1, "one listener");
    my $port = $srv->port;
    is($by_fd{$listen[0]}{addr}, "tcp:127.0.0.1:$port", "listener address");
    ok(!exists $by_fd{$listen[0]}{listen_addr}, "a listener has no listen_addr");
    my @clients = grep { $by_fd{$_}{state} ne 'conn_listening' } keys %by_fd;
    is(scalar @clients, 2, "two clients");
    for my $fd (@clients) {
        like($by_fd{$fd}{addr}, qr/^tcp:127\.0\.0\.1:\d+$/, "client address");
        is($by_fd{$fd}{listen_addr}, "tcp:127.0.0.1:$port", "client came in on the listener");
        like($by_fd{$fd}{secs_since_last_cmd}, qr/^\d+$/, "secs since last command");
    }
    my @states = sort map { $by_fd{$_}{state} } @clients;
    is_deeply(\@states, ['conn_parse_cmd', 'conn_read'],
              "the asking client is parsing, the idle one reading");
}

# Unix socket clients have no peer address.
{
    my $c = $server->new_sock;
    print $c "stats conns\r\n";
    my @l = lines_until_end($c);
    ok((grep { /^STAT \d+:addr \?:<AF 0>\r\n$/ } @l), "unix client shown as ?:<AF 0>");
    ok((grep { /^STAT \d+:addr unix:\S+\r\n$/ } @l), "the unix listener shows its path");
}

# UDP sockets are marked.
{
    my $udp_port = MemcachedTest::free_port('udp');
    my $u = new_memcached("-l 127.0.0.1 -U $udp_port -t 2");
    my $c = $u->sock;
    print $c "stats conns\r\n";
    my @l = lines_until_end($c);
    my @udp = grep { /:UDP UDP\r\n$/ } @l;
    is(scalar @udp, 2, "one UDP connection per worker");
    ok((grep { /^STAT \d+:addr udp:127\.0\.0\.1:\d+\r\n$/ } @l), "UDP shows its address");
}

done_testing();
