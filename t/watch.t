#!/usr/bin/env perl
# `watch`: a connection turned into a log stream. Covers each event class with its exact
# line layout, the words `watch` accepts, -W, the log_* counters, the watcher limit, and a
# watcher that stops reading (its lines are skipped and counted, then announced).

use strict;
use warnings;
use Socket qw(SOL_SOCKET SO_RCVBUF);

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

# One line from a watcher, or undef after a few seconds (the logger thread may sleep up to
# a second between passes).
sub wline {
    my ($w, $secs) = @_;
    my $line;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($secs // 5);
        $line = <$w>;
        alarm(0);
    };
    alarm(0);
    return $line;
}

sub watcher {
    my ($server, $what) = @_;
    my $w = $server->new_sock;
    print $w "watch" . ($what ? " $what" : "") . "\r\n";
    is(wline($w), "OK\r\n", "watch " . ($what // "") . ": OK");
    return $w;
}

my $TS = qr/ts=\d+\.\d+ gid=\d+/;

my $server = new_memcached("-m 64");
my $c = $server->sock;
# The harness talks over a unix socket when it can: such peers show as "unix", port 0.
my $PEER = $server->{domainsocket}
    ? qr/rip=unix rport=0 transport=local/
    : qr/rip=127\.0\.0\.1 rport=\d+ transport=tcp/;

# The default is fetchers; lines end in "\n" only.
{
    my $w = watcher($server);
    print $c "get nothere\r\n";
    is(scalar <$c>, "END\r\n", "miss");
    like(wline($w), qr/^$TS type=item_get key=nothere status=not_found clsid=0 cfd=\d+ size=0\n\z/,
        "miss logged");
    print $c "set here 0 0 5\r\nhello\r\n";
    is(scalar <$c>, "STORED\r\n", "stored");
    # A set looks the key up first (not logged as a store: no mutations watched).
    like(wline($w), qr/^$TS type=item_get key=here status=not_found clsid=0 cfd=\d+ size=0\n/,
        "set's lookup");
    mem_get_is($c, "here", "hello");
    like(wline($w), qr/^$TS type=item_get key=here status=found clsid=1 cfd=\d+ size=5\n/,
        "hit with the client's value size");
    # Keys are URI-encoded.
    print $c "get a:b#c/d~e_f.g-h\r\n";
    is(scalar <$c>, "END\r\n", "odd key");
    like(wline($w), qr/^$TS type=item_get key=a%3Ab%23c%2Fd~e_f.g-h status=not_found /,
        "key URI-encoded");
    # Expired items show as such.
    print $c "set gone 0 1 1\r\nx\r\n";
    is(scalar <$c>, "STORED\r\n", "short-lived item");
    is(wline($w) =~ /key=gone status=not_found/ ? 1 : 0, 1, "its set's lookup");
    MemcachedTest::sleep(2.1);
    print $c "get gone\r\n";
    is(scalar <$c>, "END\r\n", "expired");
    like(wline($w), qr/ type=item_get key=gone status=expired clsid=0 cfd=\d+ size=0\n/,
        "expired fetch");
    # meta and binary-free paths go through the same lookup.
    print $c "mg here v\r\n";
    is(scalar <$c>, "VA 5\r\n", "mg");
    is(scalar <$c>, "hello\r\n", "mg value");
    like(wline($w), qr/ type=item_get key=here status=found clsid=1 /, "mg logged");
}

# Mutations: every store logs its outcome, command and remaining TTL.
{
    my $w = watcher($server, "mutations");
    my @cases = (
        ["set m1 0 0 2\r\nab\r\n", "STORED", qr/key=m1 status=stored cmd=set ttl=0 clsid=1 cfd=\d+ size=2\n/],
        ["add m1 0 0 1\r\nx\r\n", "NOT_STORED", qr/key=m1 status=not_stored cmd=add ttl=0 clsid=1 cfd=\d+ size=1\n/],
        ["replace m1 0 100 3\r\nxyz\r\n", "STORED", qr/key=m1 status=stored cmd=replace ttl=(99|100) clsid=1 cfd=\d+ size=3\n/],
        ["append m1 0 0 2\r\n12\r\n", "STORED", qr/key=m1 status=stored cmd=append ttl=(99|100) clsid=1 cfd=\d+ size=5\n/],
        ["prepend nokey 0 0 2\r\n12\r\n", "NOT_STORED", qr/key=nokey status=not_stored cmd=prepend ttl=0 clsid=1 cfd=\d+ size=2\n/],
        ["cas m1 0 0 1 1\r\nq\r\n", "EXISTS", qr/key=m1 status=exists cmd=cas ttl=0 clsid=1 cfd=\d+ size=1\n/],
        ["cas nokey 0 0 1 1\r\nq\r\n", "NOT_FOUND", qr/key=nokey status=not_found cmd=cas ttl=0 clsid=1 cfd=\d+ size=1\n/],
        ["ms m2 3 T50\r\nabc\r\n", "HD", qr/key=m2 status=stored cmd=set ttl=(49|50) clsid=1 cfd=\d+ size=3\n/],
        ["ms m2 1 ME\r\nz\r\n", "NS", qr/key=m2 status=not_stored cmd=add ttl=0 clsid=1 cfd=\d+ size=1\n/],
    );
    for my $case (@cases) {
        my ($cmd, $reply, $re) = @$case;
        print $c $cmd;
        is(scalar <$c>, "$reply\r\n", "reply to " . (split /\r\n/, $cmd)[0]);
        like(wline($w), qr/^$TS type=item_store $re/, "logged " . (split /\r\n/, $cmd)[0]);
    }
    # A value too large for any class. (C logs whatever its stack holds as cfd here.)
    my $big = "x" x (1024 * 1024 + 1);
    print $c "set big 0 0 " . length($big) . "\r\n$big\r\n";
    is(scalar <$c>, "SERVER_ERROR object too large for cache\r\n", "too large");
    like(wline($w), qr/^$TS type=item_store key=big status=too_large cmd=set ttl=0 clsid=\d+ cfd=-?\d+ size=0\n/,
        "too large logged");
}

# Deletions: delete and md remove and log; md that only marks stale does not.
{
    my $w = watcher($server, "deletions");
    print $c "set d1 0 0 3\r\nabc\r\nset d2 0 0 4\r\nabcd\r\nset d3 0 0 1\r\nx\r\n";
    is(scalar <$c>, "STORED\r\n", "d1") for 1 .. 3;
    print $c "delete d1\r\n";
    is(scalar <$c>, "DELETED\r\n", "delete");
    like(wline($w), qr/^ts=\d+\.\d+ gid=\d+ type=deleted key=d1 cmd=delete clsid=1 size=3\n/, "delete logged");
    print $c "delete d1\r\nmd nope\r\nmd d3 I\r\nmd d2\r\n";
    is(scalar <$c>, "NOT_FOUND\r\n", "delete miss");
    is(scalar <$c>, "NF\r\n", "md miss");
    is(scalar <$c>, "HD\r\n", "md stale");
    is(scalar <$c>, "HD\r\n", "md");
    like(wline($w), qr/^$TS type=deleted key=d2 cmd=md clsid=1 size=4\n/,
        "only the real md is logged");
}

# Connection events, for normal and error closes (on a server of their own, where no other
# watcher's close can come first).
{
    my $cs = new_memcached();
    my $w = watcher($cs, "connevents");
    my $s = $cs->new_sock;
    print $s "version\r\n";
    like(scalar <$s>, qr/^VERSION /, "client talks");
    print $s "quit\r\n";
    # A connection accepted earlier (the harness's own) is set up by its worker when that
    # worker gets to it, so its conn_new may come after the watcher started: find ours by
    # the descriptor its close names.
    my (%new, $close);
    for (1 .. 8) {
        my $l = wline($w) // last;
        $new{$1} = $l if $l =~ /^$TS type=conn_new $PEER cfd=(\d+)\n\z/;
        if ($l =~ / type=conn_close /) {
            $close = $l;
            last;
        }
    }
    my $cfd = ($close // '') =~ /cfd=(\d+)\n\z/ ? $1 : -1;
    ok(exists $new{$cfd}, "conn_new, then its close");
    like($close // '', qr/^$TS type=conn_close $PEER reason=normal cfd=\d+\n\z/,
        "conn_close normal");
    $s = $cs->new_sock;
    print $s "GET / HTTP/1.1\r\n";
    # Lines of other connections (e.g. the harness's own) may come in between.
    my ($new, $err);
    for (1 .. 8) {
        my $l = wline($w) // last;
        $new //= $l if $l =~ / type=conn_new /;
        if ($l =~ / type=conn_close .* reason=error cfd=\d+\n/) {
            $err = $l;
            last;
        }
    }
    like($new // '', qr/ type=conn_new /, "second conn_new");
    like($err // '', qr/ type=conn_close .* reason=error cfd=\d+\n/, "conn_close error");
}

# Word parsing: prefixes of the known words count; anything else is an error.
{
    my $w = watcher($server, "fetch mut");
    print $c "set pw 0 0 1\r\nx\r\n";
    is(scalar <$c>, "STORED\r\n", "stored");
    like(wline($w), qr/ type=item_get key=pw /, "fetchers by prefix");
    like(wline($w), qr/ type=item_store key=pw /, "mutations by prefix");
    for my $bad ("watch bogus", "watch fetchers bogus", "watch fetchersx") {
        my $s = $server->new_sock;
        is(mem_request($s, "$bad\r\n", 1), "ERROR\r\n", "'$bad' refused");
        is(mem_request($s, "version\r\n", 1) =~ /^VERSION/ ? 1 : 0, 1, "connection still usable");
    }
    my $s = $server->new_sock;
    print $s "mg pw v\r\nwatch\r\n";
    is(scalar <$s>, "VA 1\r\n", "pipelined mg");
    is(scalar <$s>, "x\r\n", "its value");
    is(scalar <$s>, "ERROR cannot pipeline other commands before watch\r\n", "pipelined watch refused");
    # proxy words are accepted by a build without the proxy (and never produce lines).
    watcher($server, "proxyreqs proxyevents proxyuser rawcmds sysevents");
}

# Evictions.
{
    my $ev = new_memcached("-m 2 -o no_lru_maintainer");
    my $ec = $ev->sock;
    my $w = watcher($ev, "evictions");
    my $val = "v" x 5000;
    print $ec join('', map { "set ev$_ 0 0 5000 noreply\r\n$val\r\n" } 1 .. 600);
    is(mem_request($ec, "version\r\n", 1) =~ /^VERSION/ ? 1 : 0, 1, "filled past the limit");
    like(wline($w), qr/^$TS type=eviction key=ev\d+ fetch=no ttl=-1 la=\d+ clsid=\d+ size=5000\n/,
        "eviction logged");
    my $st = mem_stats($ec);
    cmp_ok($st->{evictions}, '>', 0, "evictions happened");
}

# sysevents: the maintainer reports each list's automatic crawl (the first ones run right
# after start-up).
{
    my $ss = new_memcached();
    my $w = watcher($ss, "sysevents");
    like(wline($w, 8), qr/^$TS type=lru_crawler crawler=\d+ lru=(hot|warm|cold|temp) low_mark=\d+ next_reclaims=\d+ since_run=\d+ next_run=-?\d+ elapsed=\d+ examined=\d+ reclaimed=\d+\n\z/,
        "crawler schedule line");
}

# -W refuses watch.
{
    my $nw = new_memcached("-W");
    is(mem_request($nw->sock, "watch\r\n", 1), "CLIENT_ERROR watch commands not allowed\r\n", "-W");
}

# Counters, the watcher limit, closing watchers, and a watcher that stops reading.
{
    my $srv = new_memcached("-o watcher_logbuf_size=8");
    my $sc = $srv->sock;
    my @w = map { watcher($srv, "fetchers") } 1 .. 20;
    my $extra = $srv->new_sock;
    is(mem_request($extra, "watch\r\n", 1), "WATCHER_TOO_MANY log watcher limit reached\r\n", "21st watcher refused");
    is(mem_request($extra, "version\r\n", 1) =~ /^VERSION/ ? 1 : 0, 1, "refused connection still usable");
    my $st;
    for (1 .. 30) {
        $st = mem_stats($sc);
        last if $st->{log_watchers} == 20;
        MemcachedTest::sleep(0.1);
    }
    is($st->{log_watchers}, 20, "log_watchers");
    print $sc "get k1\r\n";
    is(scalar <$sc>, "END\r\n", "one fetch");
    like(wline($_), qr/ type=item_get key=k1 /, "every watcher sees it") for @w;
    $st = mem_stats($sc);
    is($st->{log_worker_written}, 1, "log_worker_written");
    is($st->{log_watcher_sent}, 20, "log_watcher_sent");
    is($st->{log_worker_dropped}, 0, "log_worker_dropped");
    close($_) for @w;
    # The logger drops a watcher first, then its worker closes the connection.
    for (1 .. 40) {
        $st = mem_stats($sc);
        last if $st->{log_watchers} == 0 && $st->{curr_connections} == 2;
        MemcachedTest::sleep(0.1);
    }
    is($st->{log_watchers}, 0, "closed watchers are gone");
    is($st->{curr_connections}, 2, "and their connections closed");

    # A watcher that does not read: its socket and buffer fill, lines are skipped.
    my $slow = $srv->new_sock;
    setsockopt($slow, SOL_SOCKET, SO_RCVBUF, 4096);
    print $slow "watch\r\n";
    my $pad = "p" x 200;
    for my $i (1 .. 20000) {
        print $sc "get miss$i$pad\r\n";
        <$sc>;
    }
    MemcachedTest::sleep(1.2);
    $st = mem_stats($sc);
    cmp_ok($st->{log_watcher_skipped}, '>', 0, "log_watcher_skipped counts lines not sent");
    my ($saw_skip, $after) = (0, undef);
    for (1 .. 100000) {
        my $l = wline($slow, 3);
        last unless defined $l;
        if ($l =~ /^skipped=(\d+)\n\z/) {
            $saw_skip = $1;
            last;
        }
        # New lines make the logger write the skip notice once there is room.
        if ($_ % 10 == 0) {
            print $sc "get nudge\r\n";
            <$sc>;
        }
    }
    cmp_ok($saw_skip, '>', 0, "skipped=N announced in the stream");
    print $sc "get after\r\n";
    <$sc>;
    like(wline($slow), qr/^$TS type=item_get /, "a normal line follows the notice");
}

done_testing();
