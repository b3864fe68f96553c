#!/usr/bin/env perl
# Options C memcached accepts whose subsystem this port does not have yet
# (ext_path: values on flash) stop the server at once: a message naming the
# missing part on stderr, exit status 1. This is the port's own behaviour.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(run_binary);

use File::Temp qw(tempdir);
use POSIX qw(WNOHANG);

my $tmp = tempdir(CLEANUP => 1);

my $yet = "is not supported by this build yet\n";
my $sock = "$tmp/never.sock";

# [args, stderr]
my @cases = (
    [['-o', 'ext_path=/tmp/extstore:64m'], "memcached: -o ext_path (extstore) $yet"],
    # No value: refused on the name, as with one.
    [['-o', 'ext_path'], "memcached: -o ext_path (extstore) $yet"],
    # Options before it are handled first.
    [['-o', 'modern,ext_wbuf_size=x,ext_path=/tmp/x:1G'],
        "could not parse argument to ext_wbuf_size\n"],
    [['-c', '0', '-o', 'ext_path=/tmp/x:1G'],
        "Maximum connections must be greater than 0\n"],
);

for my $case (@cases) {
    my ($args, $err) = @$case;
    my $name = join(' ', @$args);
    my $r = run_binary(@$args, '-s', $sock);
    is($r->{err}, $err, "'$name': stderr");
    is($r->{out}, '', "'$name': nothing on stdout");
    is($r->{rc}, 1, "'$name': exit status 1");
    ok(!$r->{timed_out} && !-e $sock, "'$name': the server did not start");
}

# A name that only starts like one is still an unknown sub-option, named on stderr by
# extstore's option reader as in C's default build.
my $r = run_binary('-o', 'ext_bogus=1', '-s', $sock);
is($r->{err}, "Illegal suboption \"ext_bogus=1\"\n", "ext_bogus: Illegal suboption");
is($r->{rc}, 1, "ext_bogus: exit status 1");

done_testing();
