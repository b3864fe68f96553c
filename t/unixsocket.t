#!/usr/bin/env perl
# -s (unix socket) and -a (its access mask).

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);

plan skip_all => "this server has no unix socket support" unless supports_unix_socket();

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';
my $tmp = tempdir(CLEANUP => 1);
my @as_root = $< == 0 ? ('-u', 'root') : ();

sub mode_of { return (stat($_[0]))[2] & 07777 }

# Default mask.
{
    my $path = "$tmp/default.sock";
    my $server = new_memcached("-s $path");
    ok(-S $path, "socket file created");
    is(sprintf("%o", mode_of($path)), "700", "default access mask 700");
    my $sock = $server->sock;
    print $sock "version\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "served over the unix socket");
    my $settings = mem_stats($sock, 'settings');
    is($settings->{domain_socket}, $path, "domain_socket setting");
    is($settings->{umask}, 700, "umask setting");
    $server->stop;
    $server->wait_exit(10);
    ok(-S $path, "socket file is left behind at exit");
}

# Other masks.
for my $mask (qw(755 644 777 600)) {
    my $path = "$tmp/mask$mask.sock";
    my $server = new_memcached("-s $path -a $mask");
    is(sprintf("%o", mode_of($path)), $mask, "-a $mask sets the socket mode");
    is(mem_stats($server->sock, 'settings')->{umask}, $mask, "-a $mask: umask setting");
}

# A stale socket file is replaced.
{
    my $path = "$tmp/stale.sock";
    my $old = IO::Socket::UNIX->new(Local => $path, Type => SOCK_STREAM, Listen => 1)
        or die "cannot create $path: $!";
    close($old);
    ok(-S $path, "stale socket file exists");
    my $server = new_memcached("-s $path");
    my $sock = $server->sock;
    print $sock "version\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "server replaced the stale socket");
}

# A unix socket disables TCP and UDP.
{
    my $port = free_port();
    my $udp = free_port('udp');
    my $path = "$tmp/nonet.sock";
    my $server = new_memcached("-s $path -p $port -U $udp");
    ok($server->sock, "server on the unix socket");
    my $tcp = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    ok(!$tcp, "no TCP listener with -s");
    my $probe = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $udp, Proto => 'udp');
    ok($probe, "no UDP socket with -s");
}

# Something that is not a socket is in the way.
{
    my $path = "$tmp/regular-file";
    open(my $fh, '>', $path) or die;
    close($fh);
    my $exe = get_memcached_exe();
    my $err = `$exe @as_root -s $path 2>&1 >/dev/null`;
    is($? >> 8, 71, "existing regular file: exit code 71");
    like($err, qr{\Abind\(\): Address already in use\nfailed to listen on UNIX socket: \Q$path\E: .*\n\z},
        "existing regular file: error message");
    ok(-f $path, "the regular file is untouched");
}

done_testing();
