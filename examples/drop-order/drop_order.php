<?php
// Drop one order id into the itnio-otp-exporter spool atomically.
function drop_order(string $orderId, string $spool = '/var/spool/itnio-otp'): void
{
    $line = json_encode(['orderId' => $orderId, 'issuedAt' => time()]) . "\n";
    // A hidden temporary file in the spool itself (same filesystem), then an atomic rename.
    $tmp = tempnam($spool, '.order-');
    if ($tmp === false || file_put_contents($tmp, $line) === false) {
        throw new RuntimeException("cannot write to spool $spool");
    }
    chmod($tmp, 0644);
    $target = sprintf('%s/order-%s-%d', $spool, hrtime(true), getmypid());
    if (!rename($tmp, $target)) {
        throw new RuntimeException("cannot rename $tmp into the spool");
    }
}

if (PHP_SAPI === 'cli' && isset($argv[1])) {
    drop_order($argv[1], $argv[2] ?? '/var/spool/itnio-otp');
}
