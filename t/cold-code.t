#!/usr/bin/env perl
# The build gathers std's backtrace symbolizer, code that runs only to print a panic, in a
# section of its own (.text.cold, build.rs), apart from code that runs: the kernel maps a
# binary in windows around each page that runs, so code interleaved with running code counts
# in the server's RSS however rarely it runs itself.

use strict;
use warnings;
no warnings 'portable';    # 64-bit addresses from hex()

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

plan skip_all => 'needs /proc/PID/pagemap' unless -r '/proc/self/pagemap';
plan skip_all => 'needs readelf (binutils)' unless `readelf --version 2>/dev/null`;

my $exe = MemcachedTest::get_memcached_exe();
my ($cold_off, $cold_size);
for (`readelf -SW $exe`) {
    # [Nr] Name Type Address Off Size ...
    if (/\]\s+\.text\.cold\s+PROGBITS\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)/) {
        ($cold_off, $cold_size) = (hex $1, hex $2);
    }
}
ok(defined $cold_off, "$exe has a .text.cold section");
cmp_ok($cold_size // 0, '>', 128 * 1024, "it holds the symbolizer's code (over 128 KiB)");

my $server = new_memcached('-t 2');
my $sock = $server->sock;
# Traffic through the usual paths first: text and meta commands, stats.
for my $i (1 .. 200) {
    print $sock "set k$i 0 0 5\r\nhello\r\n";
    is(scalar <$sock>, "STORED\r\n", "set k$i") if $i == 1;
    <$sock> unless $i == 1;
    print $sock "get k$i\r\n";
    <$sock> for 1 .. 3;
    print $sock "mg k$i v f t\r\n";
    <$sock> for 1 .. 2;
}
print $sock "stats\r\n";
while (<$sock>) { last if /^END/ }
print $sock "version\r\n";
like(scalar <$sock>, qr/^VERSION /, "server still answers");

# How much of the section is resident is not asserted: the kernel maps a file's pages in
# windows around each page touched, and those windows are as large as the page cache's folios
# for the file, which depend on how it was written and read. The count is shown.
my $pid = $server->pid;
if (open(my $fh, '<', "/proc/$pid/task/$pid/children")) {
    my ($child) = split ' ', (<$fh> // '');
    $pid = $child if $child;
}
if (defined $cold_off && open(my $maps, '<', "/proc/$pid/maps")) {
    my ($start, $map_off);
    while (<$maps>) {
        my ($range, $perm, $off, undef, undef, $path) = split ' ';
        next unless $perm =~ /x/ && defined $path && $path =~ m{/memcached[^/]*$};
        my ($lo, $hi) = map { hex } split /-/, $range;
        $off = hex $off;
        ($start, $map_off) = ($lo, $off)
            if $cold_off >= $off && $cold_off < $off + ($hi - $lo);
    }
    if (defined $start && open(my $pm, '<:raw', "/proc/$pid/pagemap")) {
        my ($pages, $resident) = (0, 0);
        # Whole pages of the section only: its first and last share pages with other code.
        for my $fpage (int(($cold_off + 4095) / 4096) .. int(($cold_off + $cold_size) / 4096) - 1) {
            seek($pm, int(($start + $fpage * 4096 - $map_off) / 4096) * 8, 0) or last;
            read($pm, my $entry, 8) == 8 or last;
            $pages++;
            $resident++ if (unpack('VV', $entry))[1] & 0x80000000;
        }
        diag("$resident of the section's $pages whole pages are resident");
    }
}

done_testing();
