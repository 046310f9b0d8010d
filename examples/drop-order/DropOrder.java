import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;

/** Drops one order id into the itnio-otp-exporter spool atomically. */
public final class DropOrder {
    public static void dropOrder(String orderId, String spoolDir) throws IOException {
        Path spool = Paths.get(spoolDir);
        // A hidden temporary file in the spool itself (same filesystem), then an atomic rename.
        Path tmp = Files.createTempFile(spool, ".order-", ".tmp");
        String line = "{\"orderId\":\"" + orderId + "\",\"issuedAt\":" + (System.currentTimeMillis() / 1000) + "}\n";
        Files.write(tmp, line.getBytes(StandardCharsets.UTF_8));
        Path target = spool.resolve("order-" + System.nanoTime() + "-" + ProcessHandle.current().pid());
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
    }

    public static void main(String[] args) throws IOException {
        dropOrder(args[0], args.length > 1 ? args[1] : "/var/spool/itnio-otp");
    }
}
