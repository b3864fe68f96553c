#!/usr/bin/env perl
# "stats" (general) and "stats settings": field names, order, format and the
# values the process and connection fields take.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

use Config;

my $version = $ENV{MEMCACHED_EXPECT_VERSION} || '1.6.45';

# Send a stats command and return its lines (without \r\n), checking framing.
sub stats_lines {
    my ($sock, $command, $label) = @_;
    print $sock "$command\r\n";
    my (@lines, $bad);
    while (defined(my $line = <$sock>)) {
        last if $line eq "END\r\n";
        $bad = $line unless $line =~ /\ASTAT \S+ [^\r\n]*\r\n\z/;
        $line =~ s/\r\n\z//;
        push(@lines, $line);
    }
    ok(!defined $bad, "$label: every line is 'STAT name value\\r\\n'")
        or diag("bad line: $bad");
    return @lines;
}

sub names_of { return map { (split / /, $_, 3)[1] } @_ }
sub hash_of  { return { map { (split / /, $_, 3)[1, 2] } @_ } }

my @process_fields = qw(
    pid uptime time version libevent pointer_size rusage_user rusage_system
    max_connections curr_connections total_connections rejected_connections
    connection_structures response_obj_oom response_obj_count response_obj_bytes
    read_buf_count read_buf_bytes read_buf_bytes_free read_buf_oom reserved_fds
);
my @command_fields = qw(
    cmd_get cmd_set cmd_flush cmd_touch cmd_meta get_hits get_misses get_expired
    get_flushed delete_misses delete_hits incr_misses incr_hits decr_misses
    decr_hits cas_misses cas_hits cas_badval touch_hits touch_misses
    store_too_large store_no_memory auth_cmds auth_errors
);
my @io_fields = qw(
    bytes_read bytes_written limit_maxbytes accepting_conns listen_disabled_num
    time_in_listen_disabled_us threads conn_yields hash_power_level hash_bytes
    hash_is_expanding
);
my @slab_reassign_fields = qw(
    slab_reassign_rescues slab_reassign_chunk_rescues slab_reassign_inline_reclaim
    slab_reassign_busy_items slab_reassign_busy_deletes slab_reassign_busy_nomem
    slab_reassign_last_busy_status slab_reassign_running slabs_moved
);
my @crawler_fields = qw(lru_crawler_running lru_crawler_starts);
my @log_fields = qw(
    malloc_fails log_worker_dropped log_worker_written log_watcher_skipped
    log_watcher_sent log_watchers unexpected_napi_ids round_robin_fallback
);
my @item_fields = qw(
    bytes curr_items total_items slab_global_page_pool expired_unfetched
    evicted_unfetched
);
my @segmented_item_fields = qw(evicted_active);
my @more_item_fields = qw(
    evictions reclaimed crawler_reclaimed crawler_items_checked lrutail_reflocked
);
my @segmented_tail_fields = qw(
    moves_to_cold moves_to_warm moves_within_lru direct_reclaims lru_bumps_dropped
);

my @default_names = (
    @process_fields, @command_fields, @io_fields, @slab_reassign_fields,
    @crawler_fields, 'lru_maintainer_juggles', @log_fields, @item_fields,
    @segmented_item_fields, @more_item_fields, @segmented_tail_fields,
);


my @settings_names = qw(
    maxbytes maxconns tcpport udpport inter verbosity oldest evictions
    domain_socket umask shutdown_command growth_factor chunk_size num_threads
    num_threads_per_udp stat_key_prefix detail_enabled reqs_per_event
    cas_enabled tcp_backlog binding_protocol auth_enabled_sasl
    auth_enabled_ascii item_size_max maxconns_fast hashpower_init slab_reassign
    slab_automove slab_automove_ratio slab_automove_window slab_chunk_max
    lru_crawler lru_crawler_sleep lru_crawler_tocrawl tail_repair_time
    flush_enabled dump_enabled hash_algorithm lru_maintainer_thread
    lru_segmented hot_lru_pct warm_lru_pct hot_max_factor warm_max_factor
    temp_lru temporary_ttl idle_timeout watcher_logbuf_size worker_logbuf_size
    read_buf_mem_limit track_sizes inline_ascii_response drop_privileges
    ext_item_size ext_item_age ext_low_ttl ext_recache_rate ext_wbuf_size
    ext_compact_under ext_drop_under ext_max_sleep ext_max_frag
    slab_automove_freeratio ext_drop_unread
    ssl_enabled ssl_chain_cert ssl_key ssl_verify_mode ssl_keyformat ssl_ciphers
    ssl_ca_cert ssl_wbuf_size ssl_session_cache ssl_kernel_tls ssl_min_version
    num_napi_ids memory_file client_flags_size
);

# ---------------------------------------------------------------------------
# Default server on a unix socket, one client.

my $t_before = time();
my $server = new_memcached();
my $sock = $server->sock;
my $t_after = time();

my @lines = stats_lines($sock, "stats", "stats");
is_deeply([names_of(@lines)], \@default_names, "stats: every name of C's report, in order");
my $s = hash_of(@lines);

like($s->{pid}, qr/^\d+$/, "pid is a number");
SKIP: {
    skip "no /proc", 1 unless -r "/proc/$s->{pid}/stat";
    open(my $fh, '<', "/proc/$s->{pid}/stat") or die;
    my $stat = <$fh>;
    my ($ppid) = $stat =~ /^\d+ \(.*\) \S (\d+)/;
    is($ppid, $server->pid, "pid is the server started by timedrun");
}
like($s->{uptime}, qr/^\d+$/, "uptime is a number");
like($s->{time}, qr/^\d+$/, "time is a number");
cmp_ok(abs($s->{time} - time()), '<=', 2, "time is the current time");
my $started = $s->{time} - $s->{uptime};
cmp_ok($started, '>=', $t_before - 3, "time - uptime is not before the start");
cmp_ok($started, '<=', $t_after, "time - uptime is not after the start");
is($s->{version}, $version, "version");
like($s->{libevent}, qr/^\d+\.\d+\.\d+-\w+$/, "libevent version string");
is($s->{pointer_size}, $Config{ptrsize} * 8, "pointer_size");
like($s->{rusage_user}, qr/^\d+\.\d{6}$/, "rusage_user is seconds.micros");
like($s->{rusage_system}, qr/^\d+\.\d{6}$/, "rusage_system is seconds.micros");

my %expect = (
    max_connections => 1024, curr_connections => 1, total_connections => 2,
    rejected_connections => 0, connection_structures => 2, response_obj_oom => 0,
    read_buf_oom => 0, reserved_fds => 20,
    bytes_read => length("stats\r\n"), bytes_written => 0,
    limit_maxbytes => 67108864, accepting_conns => 1, listen_disabled_num => 0,
    time_in_listen_disabled_us => 0, threads => 4, conn_yields => 0,
    hash_power_level => 16, hash_bytes => 524288, hash_is_expanding => 0,
    slab_reassign_last_busy_status => 'none', slab_reassign_running => 0,
);
$expect{$_} = 0 for @command_fields, @log_fields, @item_fields,
    @segmented_item_fields, @more_item_fields, @segmented_tail_fields,
    grep { !/busy_status|running/ } @slab_reassign_fields;
for my $k (sort keys %expect) {
    is($s->{$k}, $expect{$k}, "initial $k");
}
for my $k (qw(response_obj_count response_obj_bytes read_buf_count read_buf_bytes
              read_buf_bytes_free lru_crawler_running lru_crawler_starts
              lru_maintainer_juggles)) {
    like($s->{$k}, qr/^\d+$/, "$k is a number");
}

# Byte counters cover the whole exchange.
my $first_reply = join('', map { "$_\r\n" } @lines) . "END\r\n";
my $again = hash_of(stats_lines($sock, "stats", "second stats"));
is($again->{bytes_read}, 2 * length("stats\r\n"), "bytes_read counts both requests");
is($again->{bytes_written}, length($first_reply), "bytes_written counts the first reply");

# Connection accounting.
{
    my @extra = map { $server->new_sock } 1 .. 2;
    for my $c (@extra) {
        print $c "version\r\n";
        like(scalar <$c>, qr/^VERSION /, "extra connection works");
    }
    my $n = mem_stats($sock);
    is($n->{curr_connections}, 3, "curr_connections with three clients");
    is($n->{total_connections}, 4, "total_connections with three clients");
    is($n->{connection_structures}, 4, "connection_structures with three clients");

    close($_) for @extra;
    for (1 .. 100) {
        $n = mem_stats($sock);
        last if $n->{curr_connections} == 1;
        MemcachedTest::sleep(0.02);
    }
    is($n->{curr_connections}, 1, "closed clients leave curr_connections");
    is($n->{total_connections}, 4, "total_connections keeps counting");
    is($n->{connection_structures}, 4, "connection structures are kept");
}

# The clock advances once a second.
{
    my $before = mem_stats($sock)->{uptime};
    MemcachedTest::sleep(1.2);
    my $after = mem_stats($sock)->{uptime};
    cmp_ok($after, '>', $before, "uptime advances");
}

# ---------------------------------------------------------------------------
# stats settings

{
    my @set = stats_lines($sock, "stats settings", "stats settings");
    is_deeply([names_of(@set)], \@settings_names, "stats settings: names in order");
    my $socket_path = hash_of(@set)->{domain_socket};
    my $want = <<"END";
STAT maxbytes 67108864
STAT maxconns 1024
STAT tcpport 11211
STAT udpport 0
STAT inter NULL
STAT verbosity 0
STAT oldest 0
STAT evictions on
STAT domain_socket $socket_path
STAT umask 700
STAT shutdown_command no
STAT growth_factor 1.25
STAT chunk_size 48
STAT num_threads 4
STAT num_threads_per_udp 4
STAT stat_key_prefix :
STAT detail_enabled no
STAT reqs_per_event 20
STAT cas_enabled yes
STAT tcp_backlog 1024
STAT binding_protocol auto-negotiate
STAT auth_enabled_sasl no
STAT auth_enabled_ascii no
STAT item_size_max 1048576
STAT maxconns_fast yes
STAT hashpower_init 0
STAT slab_reassign yes
STAT slab_automove 1
STAT slab_automove_ratio 0.80
STAT slab_automove_window 10
STAT slab_chunk_max 524288
STAT lru_crawler yes
STAT lru_crawler_sleep 100
STAT lru_crawler_tocrawl 0
STAT tail_repair_time 0
STAT flush_enabled yes
STAT dump_enabled yes
STAT hash_algorithm murmur3
STAT lru_maintainer_thread yes
STAT lru_segmented yes
STAT hot_lru_pct 20
STAT warm_lru_pct 40
STAT hot_max_factor 0.20
STAT warm_max_factor 2.00
STAT temp_lru no
STAT temporary_ttl 61
STAT idle_timeout 0
STAT watcher_logbuf_size 262144
STAT worker_logbuf_size 65536
STAT read_buf_mem_limit 0
STAT track_sizes no
STAT inline_ascii_response no
STAT drop_privileges no
STAT ext_item_size 512
STAT ext_item_age 4294967295
STAT ext_low_ttl 0
STAT ext_recache_rate 2000
STAT ext_wbuf_size 4194304
STAT ext_compact_under 0
STAT ext_drop_under 0
STAT ext_max_sleep 1000000
STAT ext_max_frag 0.80
STAT slab_automove_freeratio 0.010
STAT ext_drop_unread no
STAT ssl_enabled no
STAT ssl_chain_cert (null)
STAT ssl_key (null)
STAT ssl_verify_mode 0
STAT ssl_keyformat 1
STAT ssl_ciphers NULL
STAT ssl_ca_cert NULL
STAT ssl_wbuf_size 16384
STAT ssl_session_cache no
STAT ssl_kernel_tls no
STAT ssl_min_version tlsv1.2
STAT num_napi_ids 0
STAT memory_file (null)
STAT client_flags_size 4
END
    is(join('', map { "$_\n" } @set), $want, "stats settings: default values");
    like($socket_path, qr{^/tmp/memcachetest\.}, "domain_socket is the harness's socket");

    # Spelling variants of the same command.
    my @spaced = stats_lines($sock, "stats  settings", "double space");
    is_deeply([names_of(@spaced)], \@settings_names, "'stats  settings' works");
    my @extra = stats_lines($sock, "stats settings please", "extra token");
    is_deeply([names_of(@extra)], \@settings_names, "extra tokens are ignored");

    print $sock "stats SETTINGS\r\n";
    is(scalar <$sock>, "ERROR\r\n", "subcommands are case sensitive");
    print $sock "stats nonsense\r\n";
    is(scalar <$sock>, "ERROR\r\n", "unknown stats subcommand");
    print $sock "stats\n";
    my $count = 0;
    while (defined(my $line = <$sock>)) {
        last if $line eq "END\r\n";
        $count++;
    }
    is($count, scalar(@default_names), "stats ended by a bare newline");
}

# ---------------------------------------------------------------------------
# TCP and UDP listeners, fewer threads.

{
    my $tcp = new_memcached("-l 127.0.0.1 -t 2");
    my $ts = $tcp->sock;
    my $n = mem_stats($ts);
    is($n->{threads}, 2, "threads with -t 2");
    is($n->{reserved_fds}, 10, "reserved_fds is five per thread");
    # A TCP listener, one UDP connection per thread, and this client.
    is($n->{curr_connections}, 3, "curr_connections with tcp+udp listeners");
    is($n->{total_connections}, 4, "total_connections with tcp+udp listeners");
    is($n->{connection_structures}, 4, "connection_structures with tcp+udp listeners");

    my $set = mem_stats($ts, "settings");
    is($set->{tcpport}, $tcp->port, "tcpport");
    is($set->{udpport}, $tcp->udpport, "udpport");
    is($set->{inter}, '127.0.0.1', "inter");
    is($set->{domain_socket}, 'NULL', "no domain socket");
    is($set->{num_threads}, 2, "num_threads");
    is($set->{num_threads_per_udp}, 2, "num_threads_per_udp with one interface");
}

{
    my $two = new_memcached("-l 127.0.0.1,127.0.0.2 -t 2");
    my $set = mem_stats($two->sock, "settings");
    is($set->{num_threads_per_udp}, 1, "num_threads_per_udp with two interfaces");
    is($set->{inter}, '127.0.0.1,127.0.0.2', "inter lists both interfaces");
    my $n = mem_stats($two->sock);
    # Two TCP listeners, one UDP connection per interface, this client.
    is($n->{curr_connections}, 4, "curr_connections with two interfaces");
}

# ---------------------------------------------------------------------------
# Fields that depend on settings.

{
    my $srv = new_memcached("-o no_maxconns_fast,idle_timeout=30");
    my @l = stats_lines($srv->sock, "stats", "no_maxconns_fast");
    my @names = names_of(@l);
    ok(!(grep { $_ eq 'rejected_connections' } @names),
        "no rejected_connections without maxconns_fast");
    my @want = grep { $_ ne 'rejected_connections' } @default_names;
    my ($at) = grep { $want[$_] eq 'auth_errors' } 0 .. $#want;
    splice(@want, $at + 1, 0, 'idle_kicks');
    is_deeply(\@names, \@want, "idle_kicks follows auth_errors with idle_timeout");
    is(hash_of(@l)->{idle_kicks}, 0, "idle_kicks starts at 0");
}

{
    my $srv = new_memcached("-o no_modern");
    my @names = names_of(stats_lines($srv->sock, "stats", "no_modern"));
    # no_modern also turns maxconns_fast off.
    my @want = (
        (grep { $_ ne 'rejected_connections' } @process_fields),
        @command_fields, @io_fields, @log_fields, @item_fields, @more_item_fields,
    );
    is_deeply(\@names, \@want,
        "no_modern: no slab mover, crawler, maintainer or segmented LRU fields");
}

done_testing();
