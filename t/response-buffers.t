#!/usr/bin/env perl
# Response objects come in bundles that take read-buffer-sized units of the worker's buffer
# budget (-o read_buf_mem_limit), as in C: response_obj_* and read_buf_* move the same way,
# and running out answers a multiget with C's error or closes a pipelining connection.

use strict;
use warnings;

use Test::More;
use FindBin qw($Bin);
use lib "$Bin/lib";
use MemcachedTest;

{
    my $server = new_memcached("-t 1");
    my $sock = $server->sock;
    my $s = mem_stats($sock);
    is($s->{response_obj_count}, 1, "one response object: this stats reply");
    is($s->{response_obj_bytes}, 16384, "one bundle");
    is($s->{read_buf_count}, 2, "a read buffer and the bundle's unit");
    is($s->{read_buf_bytes}, 32768, "two units of 16 KiB");

    print $sock "set a 0 0 1\r\nx\r\n";
    is(scalar <$sock>, "STORED\r\n", "stored");
    my $keys = join(' ', ('a') x 31);
    print $sock "get $keys\r\n";
    for (1 .. 31) {
        <$sock>;
        <$sock>;
    }
    is(scalar <$sock>, "END\r\n", "31-key multiget");
    $s = mem_stats($sock);
    is($s->{response_obj_count}, 1, "objects are returned after the write");
    is($s->{response_obj_bytes}, 16384, "emptied bundles are released, the last one kept");
    is($s->{read_buf_count}, 4, "the released units stay cached");
    is($s->{read_buf_bytes_free}, 32768, "two of them free");
}

{
    # 1 MB over 32 workers is less than one unit each: each worker gets one buffer.
    my $server = new_memcached("-o read_buf_mem_limit=1 -t 32 -R 500");
    my $sock = $server->sock;
    my $keys = join(' ', ('foo') x 500);
    print $sock "get $keys\r\n";
    is(scalar <$sock>, "SERVER_ERROR out of memory writing get response\r\n",
       "multiget beyond the budget");
    print $sock "version\r\n";
    like(scalar <$sock>, qr/^VERSION /, "the connection goes on");
    cmp_ok(mem_stats($sock)->{response_obj_oom}, '>', 0, "response_obj_oom counted");

    my $s = $server->new_sock;
    print $s join('', map { "version\r\n" } 1 .. 500);
    my $got = 0;
    while (defined(my $l = <$s>)) {
        $got++;
    }
    cmp_ok($got, '<', 500, "pipelined replies beyond the budget close the connection");
}

done_testing();
