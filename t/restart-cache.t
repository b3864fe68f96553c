#!/usr/bin/env perl
# The restartable cache (-e FILE): a graceful stop (SIGUSR1, "shutdown graceful")
# writes FILE.meta, and the next start with the same settings serves every item
# that has not expired, with its value, flags, CAS, TTL and last access time, large
# (chunked) values included. A changed setting, a missing or short metadata file
# start a clean cache with C's messages; a corrupt one stops the server.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedTest qw(run_binary slurp mem_metadump);

use File::Temp qw(tempdir);

my $tmp = tempdir(CLEANUP => !$ENV{T_KEEP_TMP});
my $mem = "$tmp/memory";
my $err = "$tmp/stderr";

sub start {
    my ($args) = @_;
    unlink $err;
    return new_memcached("-m 64 -e $mem $args", undef, { stderr => $err });
}

sub stop_gracefully {
    my ($server, $how) = @_;
    if (($how || '') eq 'command') {
        my $sock = $server->sock;
        print $sock "shutdown graceful\r\n";
    } else {
        $server->graceful_stop;
    }
    my $status = $server->wait_exit(20);
    is($status, 0, "graceful stop: exit status 0");
    # The saved stop time must be before the next start's second.
    sleep(1.2);
}

my $big = join('', map { chr(65 + $_ % 26) } 0 .. 700_000);

# A first life: items of several kinds.
my $server = start('');
like(slurp($err), qr/^\[restart\] no metadata save file, starting with a clean cache$/m,
    'first start: no metadata, a clean cache');
my $sock = $server->sock;
print $sock "set plain 123 0 5\r\nhello\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored plain');
print $sock "set ttl 0 3600 3\r\nttl\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored ttl');
print $sock "set counter 0 0 2\r\n10\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored counter');
print $sock "set gone 0 0 4\r\ngone\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored gone');
print $sock "delete gone\r\n";
is(scalar <$sock>, "DELETED\r\n", 'deleted gone');
print $sock "set big 7 0 " . length($big) . "\r\n$big\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored a chunked value');
for my $i (1 .. 2000) {
    print $sock "set k$i 0 0 " . length("v$i") . " noreply\r\nv$i\r\n";
}
mem_get_is($sock, 'k2000', 'v2000');
my ($cas_plain) = mem_gets($sock, 'plain');
ok($cas_plain, "plain has CAS $cas_plain");
my $before = mem_metadump($server->sock);
is(scalar(keys %$before), 2004, 'metadump sees every item');
my $stats_before = mem_stats($sock);

stop_gracefully($server);
ok(-e "$mem.meta", 'the stop wrote the metadata file');
is((stat("$mem.meta"))[2] & 07777, 0600, 'the metadata file is readable by its owner only');
like(slurp("$mem.meta"), qr/\ATmain\nKslab_config 1\.25\nKmaxbytes 67108864\n/,
    'the metadata file starts with the main section and the settings');

# Second life: everything is back.
$server = start('-v');
my $log = slurp($err);
unlike($log, qr/clean cache/, 'second start reuses the memory');
like($log, qr/^\[restart\] original memory base: \[0x[0-9a-f]+\] new base: \[0x[0-9a-f]+\]$/m,
    '-v: the old and new memory bases');
like($log, qr/^\[restart\] recovery start \[\d+\.\d+\]\n\[restart\] recovery end \[\d+\.\d+\]$/m,
    '-v: the recovery start and end');
ok(!-e "$mem.meta", 'the metadata file is removed once read');
$sock = $server->sock;
my $after = mem_metadump($server->sock);
is(scalar(keys %$after), 2004, 'metadump sees every item again');
my @changed = grep { !defined $after->{$_} || $after->{$_} ne $before->{$_} } sort keys %$before;
is_deeply(\@changed, [], 'every item has the same exp, la, cas, fetch, class and size');
mem_gets_is({ sock => $sock, flags => 123 }, $cas_plain, 'plain', 'hello',
    'plain: value, flags and CAS');
print $sock "get plain\r\n";
is(scalar <$sock>, "VALUE plain 123 5\r\n", 'flags kept');
is(scalar <$sock>, "hello\r\n", 'value kept');
is(scalar <$sock>, "END\r\n", 'end');
mem_get_is($sock, 'gone', undef, 'a deleted item stays deleted');
mem_get_is({ sock => $sock, flags => 7 }, 'big', $big, 'the chunked value is whole');
mem_get_is($sock, "k$_", "v$_", "k$_ back") for (1, 999, 2000);
my $stats = mem_stats($sock);
is($stats->{curr_items}, $stats_before->{curr_items}, 'curr_items as before');
is($stats->{bytes}, $stats_before->{bytes}, 'bytes as before');
cmp_ok($stats->{uptime}, '>', $stats_before->{uptime}, 'uptime goes on from the first life');
print $sock "incr counter 5\r\n";
is(scalar <$sock>, "15\r\n", 'incr of a restored item');
print $sock "gets counter\r\n";
my $line = <$sock>;
my ($cas_counter) = $line =~ /^VALUE counter 0 2 (\d+)\r\n$/;
<$sock>; <$sock>;
cmp_ok($cas_counter, '>', $cas_plain, 'new CAS values continue after the saved counter');
print $sock "set fresh 0 0 5\r\nfresh\r\n";
is(scalar <$sock>, "STORED\r\n", 'new items are stored');
print $sock "delete k1\r\n";
is(scalar <$sock>, "DELETED\r\n", 'restored items can be deleted');

# SIGTERM saves nothing: the next start is clean.
$server->stop;
$server->wait_exit(10);
$server = start('-A');
like(slurp($err), qr/clean cache/, 'a SIGTERM stop saves nothing: the next start is clean');
$sock = $server->sock;
mem_get_is($sock, 'plain', undef, 'the clean cache is empty');
print $sock "set after 0 0 1\r\nx\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored in the clean cache');
stop_gracefully($server, 'command');
$server = start('');
$sock = $server->sock;
mem_get_is($sock, 'after', 'x', '"shutdown graceful" kept the cache');

# SIGKILL: no metadata, so the next start ignores the memory file. The server
# runs under timedrun: kill the server itself.
my ($child) = `pgrep -P ${\ $server->pid}` =~ /(\d+)/;
ok($child, "the server's pid ($child)");
kill 'KILL', $child;
$server->wait_exit(10);
sleep(1.2);
$server = start('');
like(slurp($err), qr/^\[restart\] no metadata save file, starting with a clean cache$/m,
    'after SIGKILL: a clean cache');
$sock = $server->sock;
mem_get_is($sock, 'after', undef, 'after SIGKILL: nothing is served from the old memory');
print $sock "set kept 0 0 4\r\nkept\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored kept');
stop_gracefully($server);

# A changed setting: C's message, and a clean cache.
$server = start('-n 64');
is(slurp($err),
    "[restart] restart incompatible due to setting for [chunk_size] [old value: 48]\n"
    . "[restart] missing some metadata lines\n"
    . "[restart] failed to validate metadata, starting with a clean cache\n",
    'a changed -n is refused with the old value');
$sock = $server->sock;
mem_get_is($sock, 'kept', undef, 'the refused memory is not served');
print $sock "set kept 0 0 4\r\nkept\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored kept again');
stop_gracefully($server);

$server = start('-f 1.5');
like(slurp($err), qr/\[restart\] restart incompatible due to setting for \[slab_config\] \[old value: 1\.25\]\n/,
    'a changed -f is refused');
stop_gracefully($server);

# A short metadata file: too few lines to trust.
$server = start('');
stop_gracefully($server);
{
    my @lines = split /^/, slurp("$mem.meta");
    open(my $fh, '>', "$mem.meta") or die;
    print $fh @lines[0 .. 8];
    close $fh;
}
$server = start('');
is(slurp($err),
    "[restart] missing some metadata lines\n"
    . "[restart] failed to validate metadata, starting with a clean cache\n",
    'a truncated metadata file: a clean cache');
$sock = $server->sock;
mem_get_is($sock, 'kept', undef, 'nothing from the memory file');
# Two servers must never share a memory file: wait for this one to be gone.
$server->stop;
$server->wait_exit(10);

# Unknown keys are named and skipped.
$server = start('');
$sock = $server->sock;
print $sock "set kept 0 0 4\r\nkept\r\n";
is(scalar <$sock>, "STORED\r\n", 'stored kept');
stop_gracefully($server);
{
    my $text = slurp("$mem.meta");
    $text =~ s/^Khashpower/Kfuture_key 1\nKhashpower/m;
    open(my $fh, '>', "$mem.meta") or die;
    print $fh $text;
    close $fh;
}
$server = start('');
is(slurp($err), "[restart] unknown/unhandled key: future_key\n", 'an unknown key is named');
$sock = $server->sock;
mem_get_is($sock, 'kept', 'kept', 'and the memory is reused');
$server->stop;
$server->wait_exit(10);

# A metadata file that does not start with a section: the server stops (C aborts).
{
    open(my $fh, '>', "$mem.meta") or die;
    print $fh "Kmaxbytes 1\n";
    close $fh;
}
my $r = run_binary('-m', '64', '-e', $mem, '-s', "$tmp/never.sock");
is($r->{signal}, 6, 'a corrupt metadata file stops the server (SIGABRT, as C aborts)');
like($r->{err}, qr/^\[restart\] corrupt metadata file$/m, "with C's message");
ok(-e "$mem.meta", 'the corrupt file is left for the operator');

done_testing();
