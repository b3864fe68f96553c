#!/usr/bin/env perl
# -vv prints the slab class table at start-up exactly as C memcached computes it from -n, -f,
# -I, -o slab_chunk_max and -o slab_sizes. The expected tables are C 1.6.45's output.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use File::Temp qw(tempdir);

my $tmp = tempdir(CLEANUP => 1);

sub slurp {
    my ($file) = @_;
    open(my $fh, '<', $file) or return '';
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

my %cases = (
    'default.txt'        => '',
    'f2-n100.txt'        => '-f 2 -n 100',
    'slab-sizes.txt'     => '-o slab_sizes=100-200-3000',
    'I4m-f1.5.txt'       => '-I 4m -f 1.5',
    'chunk-max-16.txt'   => '-o slab_chunk_max=16',
);

for my $file (sort keys %cases) {
    my $err = "$tmp/$file.err";
    my $server = new_memcached("-vv $cases{$file}", undef, { stderr => $err });
    mem_stats($server->sock);    # started and serving
    my $got = join('', grep { /^slab class / } split(/^/m, slurp_wait($err)));
    is($got, slurp("$Bin/data/slab-classes/$file"), "slab classes for '$cases{$file}'");
    $server->stop;
}

# The table is printed before the server answers, but give stderr a moment to flush.
sub slurp_wait {
    my ($file) = @_;
    for (1 .. 50) {
        my $t = slurp($file);
        return $t if $t =~ /server listening/;
        MemcachedTest::sleep(0.05);
    }
    return slurp($file);
}

my $quiet_err = "$tmp/quiet.err";
my $quiet = new_memcached("-v", undef, { stderr => $quiet_err });
mem_stats($quiet->sock);
unlike(slurp($quiet_err), qr/slab class/, "-v alone does not print the table");

done_testing();
