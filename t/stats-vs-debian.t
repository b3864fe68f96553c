#!/usr/bin/env perl
# Debian's memcached 1.6.18 (the `memcached` package) and ours, started with the same flags
# and sent the same requests, list the same stat names in the same order, except for the
# names listed below with the reason (1.6.45 changes, and features of Debian's build).

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

my $debian = '/usr/bin/memcached';
my $version = -x $debian ? `$debian -V 2>/dev/null` : '';
plan skip_all => "Debian's memcached 1.6.18 is not installed (apt-get install memcached)"
    unless $version =~ /^memcached 1\.6\.18\b/;

my %only_debian = (
    settings => [],
    # Renamed to slab_reassign_busy_nomem after 1.6.18.
    stats => ['slab_reassign_evictions_nomem'],
);
my %only_ours = (
    # drop_privileges: shown by builds with seccomp (ours; not Debian's 1.6.18);
    # client_flags_size: new after 1.6.18.
    settings => ['drop_privileges', 'client_flags_size'],
    # The slab mover's busy counters as 1.6.45 names them.
    stats => ['slab_reassign_busy_nomem', 'slab_reassign_last_busy_status'],
);

# (Debian's 1.6.18 crashes on chunked items, so values stay below slab_chunk_max.)
my @flags = ('-I 2m', '-t 2 -o no_lru_maintainer', '-m 32 -f 1.5 -n 64');

sub names {
    my ($sock, $what) = @_;
    print $sock "stats" . ($what eq 'stats' ? '' : " $what") . "\r\n";
    my @n;
    while (defined(my $l = <$sock>)) {
        last if $l eq "END\r\n";
        push @n, $1 if $l =~ /^STAT (\S+) /;
    }
    return @n;
}

for my $flags (@flags) {
    my $c = new_memcached("$flags -l 127.0.0.1", undef, { exe => $debian });
    my $r = new_memcached("$flags -l 127.0.0.1");
    my ($cs, $rs) = ($c->sock, $r->sock);
    for my $s ($cs, $rs) {
        my $big = 'b' x 5000;
        print $s "set a 0 0 1\r\nx\r\nset big 0 0 5000\r\n$big\r\nget a nope\r\n"
            . "delete a\r\nincr nope 1\r\ntouch big 100\r\n";
        <$s> for 1 .. 8;
    }
    for my $what (qw(stats settings items slabs)) {
        my %drop_c = map { $_ => 1 } @{ $only_debian{$what} || [] };
        my %drop_r = map { $_ => 1 } @{ $only_ours{$what} || [] };
        my @cn = grep { !$drop_c{$_} } names($cs, $what);
        my @rn = grep { !$drop_r{$_} } names($rs, $what);
        ok(scalar(@rn) > 0, "'$flags': stats $what has names");
        is_deeply(\@rn, \@cn, "'$flags': stats $what: same names, same order");
    }
}

done_testing();
