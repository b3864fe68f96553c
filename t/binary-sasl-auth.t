#!/usr/bin/env perl
# Binary SASL authentication (-S) as C 1.6.45 built with --enable-sasl does it:
# the start-up refusals, the mechanism list, PLAIN against a sasldb of our
# own, every command but VERSION and the SASL ones refused (and the
# connection closed) until the client authenticates, steps out of order,
# unknown and over-long mechanisms, data too large for an item, the
# auth_cmds/auth_errors counters, and a loop of wrong passwords that must not
# grow the server.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedBinary;

use File::Temp qw(tempdir);

my $saslpasswd;
for my $dir (split(/:/, $ENV{PATH} // ''), qw(/usr/sbin /usr/bin /usr/local/sbin /usr/local/bin)) {
    if (-x "$dir/saslpasswd2") {
        $saslpasswd = "$dir/saslpasswd2";
        last;
    }
}
plan skip_all => 'no saslpasswd2 (sasl2-bin)' unless $saslpasswd;
plan skip_all => 'server built without SASL' unless supports_sasl();

my $tmp = tempdir(CLEANUP => 1);
my $db = "$tmp/sasldb";
my $realm = 'mc.realm';
my ($user, $pass) = ('tester', 'sekrit');
system("echo $pass | $saslpasswd -a memcached -u $realm -c -p -f $db $user") == 0
    or die "saslpasswd2 failed";
open(my $fh, '>', "$tmp/memcached.conf") or die $!;
print $fh "mech_list: plain\nsasldb_path: $db\n";
close($fh);
$ENV{SASL_CONF_PATH} = $tmp;

sub plain { my ($u, $p) = @_; return "\0$u\@$realm\0$p" }

# ---- start-up refusals ----
{
    my $exe = get_memcached_exe();
    for my $case (
        [['-S', '-B', 'ascii'], "ERROR: You cannot allow the ASCII protocol while using SASL.\n"],
        [['-S', '-B', 'auto'], "ERROR: You cannot allow the ASCII protocol while using SASL.\n"],
        [['--enable-sasl', '-B', 'binary', '-B', 'ascii'],
            "ERROR: You cannot allow the ASCII protocol while using SASL.\n"],
        [['-S', '-U', '11999'], "ERROR: Cannot enable UDP while using binary SASL authentication.\n"],
    ) {
        my ($args, $msg) = @$case;
        my $pid = fork();
        if (!$pid) {
            open(STDOUT, '>', "$tmp/out") or exit 99;
            open(STDERR, '>', "$tmp/err") or exit 99;
            exec($exe, @$args, '-p', '0') or exit 98;
        }
        waitpid($pid, 0);
        my $code = $? >> 8;
        my $err = do { local (@ARGV, $/) = ("$tmp/err"); <> } // '';
        is($code, 64, "@$args: exit status 64");
        is($err, $msg, "@$args: message");
    }
}

my $server = new_memcached('-S -B binary');

# One request, one reply packet.
sub ask {
    my ($sock, $bytes) = @_;
    syswrite($sock, $bytes);
    return read_packet($sock);
}

sub status_is {
    my ($p, $status, $value, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is(sprintf('%04x [%s]', $p->{status} // -1, $p->{value} // $p->{error}),
        sprintf('%04x [%s]', $status, $value), $name);
}

sub closed {
    my ($sock) = @_;
    return until_close($sock, 2) eq '';
}

sub auth_req {
    my ($mech, $data, %o) = @_;
    return req(op => OP_SASL_AUTH, key => $mech, value => $data, %o);
}

# ---- the mechanism list; VERSION is open ----
{
    my $s = $server->new_sock;
    my $p = ask($s, req(op => OP_SASL_LIST, opaque => 7));
    status_is($p, ST_OK, 'PLAIN', 'list mechs: PLAIN');
    is($p->{opaque}, 7, 'opaque echoed');
    $p = ask($s, req(op => OP_VERSION));
    is($p->{status}, ST_OK, 'version before auth');
    like($p->{value}, qr/^1\.6\.45/, 'version text');
}

# ---- refused before authentication: auth failure, then close ----
for my $case (
    ['get', req(op => OP_GET, key => 'k')],
    ['noop', req(op => OP_NOOP)],
    ['set', set_req(OP_SET, 'k', 'value')],
    ['getq', req(op => OP_GETQ, key => 'k')],
    ['stat', req(op => OP_STAT)],
    ['quit', req(op => OP_QUIT)],
    ['key too long', req(op => OP_GET, key => 'k' x 300)],
    ['unknown opcode', req(op => 0x50)],
) {
    my ($name, $bytes) = @$case;
    my $s = $server->new_sock;
    my $p = ask($s, $bytes);
    status_is($p, ST_AUTH_ERROR, 'Auth failure.', "$name before auth: auth failure");
    ok(closed($s), "$name before auth: connection closed");
}

# Length checks come first.
{
    my $s = $server->new_sock;
    my $p = ask($s, req(op => OP_GET, key => 'abc', bodylen => 2));
    status_is($p, ST_UNKNOWN, 'Unknown command', 'key longer than body: unknown command first');
    ok(closed($s), 'and closed');
    $s = $server->new_sock;
    $p = ask($s, req(op => OP_SASL_AUTH, key => 'PLAIN', bodylen => 0x50000000));
    status_is($p, ST_EINVAL, 'Invalid arguments', 'body over 1 GiB: invalid arguments');
    ok(closed($s), 'and closed');
}

# ---- bad SASL input: the connection stays usable ----
{
    my $s = $server->new_sock;
    status_is(ask($s, req(op => OP_SASL_STEP, key => 'PLAIN', value => plain($user, $pass))),
        ST_AUTH_ERROR, 'Auth failure.', 'step before auth');
    status_is(ask($s, auth_req('FOO', plain($user, $pass))),
        ST_AUTH_ERROR, 'Auth failure.', 'unknown mechanism');
    status_is(ask($s, auth_req('X' x 33, plain($user, $pass))),
        ST_EINVAL, 'Invalid arguments', 'mechanism over 32 bytes: invalid arguments');
    status_is(ask($s, auth_req('PLAIN', 'z' x (2 * 1024 * 1024))),
        ST_ENOMEM, 'Out of memory', 'data over the item size: out of memory, data swallowed');
    status_is(ask($s, auth_req('PLAIN', 'z' x (700 * 1024))),
        ST_ENOMEM, 'Out of memory', 'data needing a chunked item: out of memory');
    status_is(ask($s, auth_req('PLAIN', '')),
        0x21, '', 'no data: auth continue, asking for a step');
    status_is(ask($s, req(op => OP_SASL_STEP, key => 'PLAIN', value => plain($user, $pass))),
        ST_OK, 'Authenticated', 'the step completes it');
    status_is(ask($s, auth_req('PLAIN', plain($user, 'wrong'))),
        ST_AUTH_ERROR, 'Auth failure.', 'wrong password');
    status_is(ask($s, req(op => OP_SASL_LIST, key => 'k')),
        ST_EINVAL, 'Invalid arguments', 'list mechs with a key: protocol error');
    ok(closed($s), 'and closed');

    $s = $server->new_sock;
    status_is(ask($s, req(op => OP_SASL_AUTH, value => 'x')),
        ST_EINVAL, 'Invalid arguments', 'auth without a mechanism: protocol error');
    ok(closed($s), 'and closed');

    $s = $server->new_sock;
    status_is(ask($s, auth_req('PLAIN', plain($user, 'wrong'))),
        ST_AUTH_ERROR, 'Auth failure.', 'wrong password');
    status_is(ask($s, req(op => OP_GET, key => 'k')),
        ST_AUTH_ERROR, 'Auth failure.', 'still refused after a failed auth');
    ok(closed($s), 'and closed');
}

# ---- authenticated: normal commands ----
my $good = $server->new_sock;
{
    my $p = ask($good, auth_req('PLAIN', plain($user, $pass), opaque => 9));
    status_is($p, ST_OK, 'Authenticated', 'PLAIN with the right password');
    is($p->{opaque}, 9, 'opaque echoed');
    exchange_is($good, set_req(OP_SET, 'foo', 'bar', flags => 5),
        [res(op => OP_SET, cas => 'set')], 'set after auth');
    exchange_is($good, req(op => OP_GET, key => 'foo'),
        [res(op => OP_GET, cas => 'set', extras => pack('N', 5), value => 'bar')], 'get after auth');
    my @st = exchange($good, req(op => OP_STAT, key => 'settings'));
    my ($sasl) = grep { $_->{key} eq 'auth_enabled_sasl' } @st;
    is($sasl && $sasl->{value}, 'yes', 'stats settings: auth_enabled_sasl yes');
}

# Pipelined: the auth and the command behind it in one write.
{
    my $s = $server->new_sock;
    syswrite($s, auth_req('PLAIN', plain($user, $pass)) . req(op => OP_GET, key => 'foo'));
    status_is(read_packet($s), ST_OK, 'Authenticated', 'pipelined auth');
    my $p = read_packet($s);
    status_is($p, ST_OK, 'bar', 'command behind it runs');
    # A step after success: the exchange is over.
    my $st = ask($s, req(op => OP_SASL_STEP, key => 'PLAIN', value => plain($user, $pass)));
    is($st->{status}, ST_AUTH_ERROR, 'step after a finished exchange: auth failure');
    # Any SASL command starts the client over as unauthenticated, as C does.
    status_is(ask($s, req(op => OP_GET, key => 'foo')),
        ST_AUTH_ERROR, 'Auth failure.', 'refused after the failed step');
    ok(closed($s), 'and closed');
}
{
    my $s = $server->new_sock;
    status_is(ask($s, auth_req('PLAIN', plain($user, $pass))), ST_OK, 'Authenticated', 'auth');
    status_is(ask($s, req(op => OP_SASL_LIST)), ST_OK, 'PLAIN', 'list mechs after auth');
    status_is(ask($s, req(op => OP_GET, key => 'foo')),
        ST_AUTH_ERROR, 'Auth failure.', 'list mechs resets the authentication');
    ok(closed($s), 'and closed');
}

# ---- counters ----
sub stats_of {
    my ($sock) = @_;
    my %h = map { $_->{key} => $_->{value} } grep { !$_->{error} } exchange($sock, req(op => OP_STAT));
    return \%h;
}
{
    my $before = stats_of($good);
    my $s = $server->new_sock;
    ask($s, req(op => OP_SASL_LIST));                                 # not counted
    ask($s, auth_req('X' x 40, 'x'));                                 # EINVAL: not counted
    ask($s, auth_req('PLAIN', plain($user, 'bad')));                  # cmd + error
    ask($s, req(op => OP_SASL_STEP, key => 'PLAIN', value => 'x'));  # cmd + error
    ask($s, auth_req('PLAIN', plain($user, $pass)));                  # cmd
    my $after = stats_of($good);
    is($after->{auth_cmds} - $before->{auth_cmds}, 3, 'auth_cmds: successes and failures');
    is($after->{auth_errors} - $before->{auth_errors}, 2, 'auth_errors: failures');
}

# ---- wrong passwords in a loop: no growth, others unaffected ----
sub rss_kb {
    my $pid = $server->pid;
    open(my $f, '<', "/proc/$pid/status") or return 0;
    while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}
{
    my $round = sub {
        my ($n) = @_;
        for my $i (1 .. $n) {
            my $s = $server->new_sock;
            for (1 .. 20) {
                my $p = ask($s, auth_req('PLAIN', plain($user, "wrong$i")));
                die "unexpected reply" unless $p->{status} == ST_AUTH_ERROR;
            }
            close($s);
        }
    };
    $round->(50);
    my $rss0 = rss_kb();
    $round->(300);
    my $rss1 = rss_kb();
    cmp_ok($rss1 - $rss0, '<', 2048, "6000 failed auths over 300 connections: RSS $rss0 -> $rss1 kB");
    exchange_is($good, req(op => OP_GET, key => 'foo'),
        [res(op => OP_GET, cas => 'set', extras => pack('N', 5), value => 'bar')],
        'an authenticated client is unaffected');
}

# ---- MEMCACHED_SASL_PWDB: a user:password file beside the sasldb ----
{
    # libsasl hands the checker the user with the realm appended.
    open(my $pw, '>', "$tmp/pwdb") or die $!;
    print $pw "long:" . ('p' x 300) . "\npwuser\@$realm:pwpass\nother:x\n";
    close($pw);
    local $ENV{MEMCACHED_SASL_PWDB} = "$tmp/pwdb";
    my $srv = new_memcached('-S');
    my $s = $srv->new_sock;
    status_is(ask($s, auth_req('PLAIN', plain('pwuser', 'pwpass'))),
        ST_OK, 'Authenticated', 'pwdb: user from the password file');
    status_is(ask($s, auth_req('PLAIN', plain('pwuser', 'pwpas'))),
        ST_AUTH_ERROR, 'Auth failure.', 'pwdb: a prefix of the password');
    status_is(ask($s, auth_req('PLAIN', plain('pwuser', 'p' x 300))),
        ST_AUTH_ERROR, 'Auth failure.', 'pwdb: a password too long to check');
    status_is(ask($s, auth_req('PLAIN', plain($user, $pass))),
        ST_OK, 'Authenticated', 'pwdb: the sasldb user still works');
}

done_testing();
