// Prints, for each key read from stdin (one per line, UTF-8), the partition Kafka's Java client assigns it
// among N partitions: Utils.toPositive(Utils.murmur2(key)) % N — the built-in partitioner's rule for keyed records.
// Run with Kafka's own jars: java -cp "<kafka libs>/*" Murmur2Partition.java N < keys
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.utils.Utils;

public class Murmur2Partition {
    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            byte[] key = line.getBytes(StandardCharsets.UTF_8);
            System.out.println(Utils.toPositive(Utils.murmur2(key)) % n);
        }
    }
}
