#!/usr/bin/env perl
# doc/memcached.1 names every option `memcached -h` lists and every -o sub-option the parser
# knows, and `make install` puts the server and the page under DESTDIR/PREFIX.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use File::Temp qw(tempdir);

my $man = "$Bin/../doc/memcached.1";
open(my $fh, '<', $man) or die "$man: $!";
my $page = do { local $/; <$fh> };
# Plain text: no font escapes.
(my $text = $page) =~ s/\\f[BIRP]//g;
$text =~ s/\\-/-/g;

my $help = `$Bin/../memcached -h`;
my @flags = $help =~ /^(-[A-Za-z])[, ]/mg;
my @long = $help =~ /^-[A-Za-z],? +(--[a-z_-]+)/mg;
my @subs = $help =~ /^   - ([a-z_0-9]+):/mg;
ok(@flags > 30 && @long > 30 && @subs > 30, "options read from -h");
for my $o (@flags, @long, @subs) {
    like($text, qr/(?<![A-Za-z_-])\Q$o\E(?![A-Za-z_])/, "the page names $o");
}
# Sub-options -h does not list.
for my $o (qw(slab_reassign slab_automove slab_automove_ratio slab_automove_window slab_sizes
              lru_maintainer lru_crawler no_chunked_items no_maxconns_fast inline_ascii_resp
              no_inline_ascii_resp resp_obj_mem_limit ext_path)) {
    like($text, qr/\b\Q$o\E\b/, "the page names $o");
}

my $dest = tempdir(CLEANUP => 1);
my $out = `make -C $Bin/.. --no-print-directory -s install DESTDIR=$dest PREFIX=/usr 2>&1`;
is($?, 0, "make install DESTDIR=... PREFIX=/usr") or diag($out);
ok(-x "$dest/usr/bin/memcached", "the server");
ok(-f "$dest/usr/share/man/man1/memcached.1", "the man page");
ok(-x "$dest/usr/share/memcached/scripts/systemd-memcached-wrapper", "the wrapper");
ok(-f "$dest/usr/share/memcached/memcached.service", "the unit");
done_testing();
