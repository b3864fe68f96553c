#!/usr/bin/env perl
# The build gathers std's backtrace symbolizer, code that runs only to print a panic, in a
# section of its own (.text.cold, build.rs), apart from code that runs: the kernel maps a
# binary in windows around each page that runs, so code interleaved with running code is
# resident however rarely it runs itself. How much of it stays unmapped depends on the
# kernel's windows (page-cache folio sizes), so it is measured in bench/, not asserted here.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

plan skip_all => 'needs readelf (binutils)' unless `readelf --version 2>/dev/null`;

my $exe = MemcachedTest::get_memcached_exe();
my ($cold_size, $cold_before_text, $seen_text);
for (`readelf -SW $exe`) {
    # [Nr] Name Type Address Off Size ...
    if (/\]\s+\.text\.cold\s+PROGBITS\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)/) {
        $cold_size = hex $1;
        $cold_before_text = !$seen_text;
    }
    $seen_text = 1 if /\]\s+\.text\s/;
}
ok(defined $cold_size, "$exe has a .text.cold section");
cmp_ok($cold_size // 0, '>', 128 * 1024, "it holds the symbolizer's code (over 128 KiB)");
ok($cold_before_text, "it lies ahead of .text");

# A binary linked this way still starts and serves.
my $server = new_memcached();
my $sock = $server->sock;
print $sock "set k 0 0 5\r\nhello\r\n";
is(scalar <$sock>, "STORED\r\n", "set");
mem_get_is($sock, "k", "hello");

done_testing();
