#!/usr/bin/env perl
# The "version" command and the version reported by -V and "stats".

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

# See t/startup.t: the C reference build reports "UNKNOWN".
my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';

my $exe = get_memcached_exe();
my $dash_v = `$exe -V`;
is($dash_v, "memcached $version\n", "-V reports $version");

sub check_version_replies {
    my ($server, $how) = @_;
    my $sock = $server->sock;

    print $sock "version\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "$how: version");

    print $sock "version\n";
    is(scalar <$sock>, "VERSION $version\r\n", "$how: version ended by a bare newline");

    print $sock "version ignores its arguments\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "$how: version with arguments");

    print $sock "version \r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "$how: version with a trailing space");

    print $sock "version\r\nversion\r\n";
    is(scalar <$sock>, "VERSION $version\r\n", "$how: first pipelined version");
    is(scalar <$sock>, "VERSION $version\r\n", "$how: second pipelined version");

    for my $bad ("VERSION", "Version", "versions", "vers", " version", "version\t") {
        print $sock "$bad\r\n";
        is(scalar <$sock>, "ERROR\r\n", "$how: '$bad' is not a command");
    }

    my $stats = mem_stats($sock);
    is($stats->{version}, $version, "$how: stats version");
}

check_version_replies(new_memcached(), "unix socket");
check_version_replies(new_memcached("-l 127.0.0.1"), "tcp");

done_testing();
