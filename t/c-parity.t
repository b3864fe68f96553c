#!/usr/bin/env perl
# Corners where a reading of the protocol docs and C 1.6.45 part ways, each checked byte for
# byte as C answers: the CAS a connection leaves behind for the next one on its descriptor,
# an explicit E0, numbers with a NUL or whitespace glued on, the prefix stats of a binary
# TOUCH miss, a binary key longer than the read buffer, and a too-long get key under noreply.

use strict;
use warnings;

use Test::More;
use IO::Select;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;
use MemcachedBinary;

my $server = new_memcached("-o no_lru_crawler,no_lru_maintainer");
# Held open throughout: the connections below come and go on the next descriptor number.
my $ctl = $server->sock;

sub curr_conns { return mem_stats($ctl)->{curr_connections} }
my $base_conns = curr_conns();

# Closes $sock and waits until the server has closed its end too, so the next connection
# gets the same descriptor number.
sub close_and_wait {
    my ($sock) = @_;
    close($sock);
    for (1 .. 250) {
        return if curr_conns() == $base_conns;
        MemcachedTest::sleep(0.02);
    }
    fail("server did not close the connection");
}

# ---- A: the CAS a closed connection leaves in its descriptor's slot ---------------------
{
    # C draws an ms's CAS before its data arrives and clears it only when the value is
    # stored: a bad data chunk leaves it for the next storage command on the descriptor.
    my $s = $server->new_sock;
    is(mem_request($s, "ms k 1 E5\r\nxyz", 1), "CLIENT_ERROR bad data chunk\r\n",
        "ms with a bad data chunk");
    print $s "quit\r\n";
    is(until_close($s), '', 'quit');
    close_and_wait($s);
    $s = $server->new_sock;
    is(mem_meta_batch($s, "set p 0 0 1\r\n1\r\nmg p c\r\n"), "STORED\r\nHD c5\r\n",
        "the next connection on the descriptor stores with the CAS left behind");
    is(mem_meta_batch($s, "set q 0 0 1\r\n1\r\nmg q c\r\n"), "STORED\r\nHD c2\r\n",
        "only once: the next set draws the first CAS of the counter");
    close_and_wait($s);

    # The same when the client goes away in the middle of the data.
    $s = $server->new_sock;
    print $s "ms k 10 E7\r\nab";
    MemcachedTest::sleep(0.1);
    close_and_wait($s);
    $s = $server->new_sock;
    is(mem_meta_batch($s, "set p 0 0 1\r\n1\r\nmg p c\r\n"), "STORED\r\nHD c7\r\n",
        "a close in the middle of an ms's data leaves its CAS too");
    close_and_wait($s);

    # A binary store leaves the stored item's CAS in the slot (each binary command clears it
    # first, so no other command may follow: no noop fence here).
    $s = $server->new_sock;
    syswrite($s, set_req(OP_SET, 'b', 'v'));
    my $p = read_packet($s);
    is($p->{status}, ST_OK, 'binary set answered');
    my $bin_cas = $p->{cas};
    ok($bin_cas, "binary set returns a CAS ($bin_cas)");
    close_and_wait($s);
    $s = $server->new_sock;
    is(mem_meta_batch($s, "set p 0 0 1\r\n1\r\nmg p c\r\n"), "STORED\r\nHD c$bin_cas\r\n",
        "a text set after a binary connection stores with its last CAS");
    close_and_wait($s);
}

# ---- B: an explicit E0 is CAS 0, with nothing drawn --------------------------------------
{
    my $s = $ctl;
    is(mem_meta_batch($s, "mg e0 N0 E0 c\r\n"), "HD c0 W\r\n", "mg autovivify with E0");
    is(mem_meta_batch($s, "ma e1 N0 E0 c\r\n"), "HD c0\r\n", "ma autovivify with E0");
    is(mem_meta_batch($s, "set e2 0 0 1\r\n1\r\nmd e2 x E0\r\ngets e2\r\n"),
        "STORED\r\nHD\r\nVALUE e2 0 0 0\r\n\r\nEND\r\n", "md x with E0 leaves CAS 0");
}

# ---- C: incr/decr/ma read the digits before a NUL, as C's strtoull does -----------------
{
    my $s = $ctl;
    is(mem_meta_batch($s, "set n 0 0 4\r\n99\0x\r\nincr n 1\r\n"), "STORED\r\n100\r\n",
        "incr of 99 followed by a NUL");
    is(mem_meta_batch($s, "set n2 0 0 4\r\n99\0x\r\nma n2 v\r\n"), "STORED\r\nVA 3\r\n100\r\n",
        "ma of 99 followed by a NUL");
    my $b = $server->new_sock;
    exchange($b, set_req(OP_SET, 'n3', "99\0x"));
    my @got = exchange($b, arith_req(OP_INCR, 'n3', 1, 0, 0xffffffff));
    is(unpack('H*', $got[0]{value}), unpack('H*', pack('Q>', 100)), 'binary incr too');
    close_and_wait($b);
}

# ---- D: a binary TOUCH miss counts as a miss in the prefix stats ------------------------
{
    my $s = $ctl;
    is(mem_meta_batch($s, "stats detail on\r\n"), "OK\r\n", 'detail on');
    my $b = $server->new_sock;
    my @got = exchange($b, req(op => OP_TOUCH, key => 'pfx:miss', extras => pack('N', 10)));
    is($got[0]{status}, ST_ENOENT, 'touch miss');
    exchange($b, set_req(OP_SET, 'pfx:hit', 'v'));
    @got = exchange($b, req(op => OP_TOUCH, key => 'pfx:hit', extras => pack('N', 10)));
    is($got[0]{status}, ST_OK, 'touch hit');
    close_and_wait($b);
    is(mem_meta_batch($s, "stats detail dump\r\n"),
        "PREFIX pfx get 2 hit 1 set 1 del 0\r\nEND\r\n", 'one hit, one miss');
    is(mem_meta_batch($s, "stats detail off\r\n"), "OK\r\n", 'detail off');
}

# ---- F: a binary key longer than the read buffer ----------------------------------------
{
    # C waits for the whole key; once the read buffer is full it closes, with no reply.
    my $b = $server->new_sock;
    my $hdr = req(op => OP_GET, keylen => 16361, bodylen => 16361);
    syswrite($b, $hdr . ('k' x 100));
    my $sel = IO::Select->new($b);
    ok(!$sel->can_read(0.5), 'no reply while the key may still come');
    syswrite($b, 'k' x 16500);
    my ($data, $err) = ('', undef);
    while ($sel->can_read(5)) {
        my $n = sysread($b, my $chunk, 65536);
        if (!defined $n) { $err = "$!"; last }
        last unless $n;
        $data .= $chunk;
    }
    is($data, '', 'closed without a reply when the buffer is full');
    close_and_wait($b);
}

# ---- G: numbers with a NUL or whitespace glued on ---------------------------------------
{
    my $s = $ctl;
    is(mem_meta_batch($s, "set g 5\0 0 1\r\nA\r\nmg g f v\r\n"), "STORED\r\nVA 1 f5\r\nA\r\n",
        "flags followed by a NUL");
    is(mem_meta_batch($s, "set g 0 100\0 1\r\nB\r\nmg g t v\r\n"), "STORED\r\nVA 1 t100\r\nB\r\n",
        "exptime followed by a NUL");
    is(mem_meta_batch($s, "append g 0\0 0 1\r\nC\r\nprepend g 0 0\0 1\r\nD\r\nget g\r\n"),
        "STORED\r\nSTORED\r\nVALUE g 0 3\r\nDBC\r\nEND\r\n", "append and prepend too");
    is(mem_meta_batch($s, "append g 0\0 0 1 noreply\r\nE\r\nget g\r\n"),
        "VALUE g 0 4\r\nDBCE\r\nEND\r\n", "stored silently under noreply");
    is(mem_meta_batch($s, "debugtime p\r\n"), "OK\r\n", 'pause the clock');
    for my $tail ("\0", "\r", "\t") {
        (my $shown = $tail) =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
        is(mem_meta_batch($s, "lru tune 10 25 0.1 2$tail\r\n"), "OK\r\n",
            "lru tune with $shown after the last factor");
    }
    is(mem_meta_batch($s, "lru tune 10 25 0.1 2x\r\n"), "ERROR\r\n", 'but not a letter');
}

# ---- H: a too-long get key under noreply ------------------------------------------------
{
    my $s = $ctl;
    my $long = 'x' x 251;
    is(mem_meta_batch($s, "get a $long noreply\r\n"),
        "CLIENT_ERROR bad command line format\r\n\r\n", 'second key too long');
    is(mem_meta_batch($s, "get $long noreply\r\n"), "\r\n",
        'first key too long: its quiet error is never written, an empty line goes out');
    is(mem_meta_batch($s, "get $long\r\n"), "CLIENT_ERROR bad command line format\r\n\r\n",
        'without noreply');
}

done_testing();
