using System.Security.Cryptography;
using EdgeEru.Ssh.Crypto;
using EdgeEru.Ssh.Transport;
using EdgeEru.Ssh.Wire;
using Xunit;

namespace EdgeEru.Ssh.Tests;

public class PacketTests
{
    public static TheoryData<string, string?> Suites() => new()
    {
        { "chacha20-poly1305@openssh.com", null },
        { "aes128-gcm@openssh.com", null },
        { "aes256-gcm@openssh.com", null },
        { "aes256-ctr", "hmac-sha2-256-etm@openssh.com" },
        { "aes256-ctr", "hmac-sha2-256" },
        { "aes128-ctr", "hmac-sha2-512-etm@openssh.com" },
        { "aes192-ctr", "hmac-sha2-512" },
    };

    private static (PacketProtector Seal, PacketProtector Open) Pair(string cipherName, string? macName)
    {
        var cipher = CipherInfo.Find(cipherName)!;
        var mac = macName is null ? null : MacInfo.Find(macName);
        var key = RandomNumberGenerator.GetBytes(cipher.KeySize);
        var iv = RandomNumberGenerator.GetBytes(cipher.IvSize);
        var macKey = RandomNumberGenerator.GetBytes(mac?.KeySize ?? 0);
        return (Protectors.Create(cipher, mac, key, iv, macKey), Protectors.Create(cipher, mac, key, iv, macKey));
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public async Task Packets_round_trip_through_each_cipher(string cipher, string? mac)
    {
        var (seal, open) = Pair(cipher, mac);
        var wire = new MemoryStream();
        var writer = new PacketWriter(wire) { Protector = seal, Sequence = 5 };
        var payloads = new[]
        {
            new byte[] { 94 }, RandomNumberGenerator.GetBytes(1000), RandomNumberGenerator.GetBytes(33000), new byte[] { 2, 0, 0, 0, 0 },
        };
        foreach (var p in payloads) writer.Frame(p);
        await writer.FlushAsync(default);

        // Each packet is whole blocks, with at least 4 bytes of padding.
        wire.Position = 0;
        var reader = new PacketReader(wire) { Protector = open, Sequence = 5 };
        foreach (var p in payloads) Assert.Equal(p, (await reader.ReadPacketAsync(default)).ToArray());
        Assert.Equal(9u, reader.Sequence);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public async Task A_flipped_bit_is_a_mac_error(string cipher, string? mac)
    {
        var (seal, open) = Pair(cipher, mac);
        var wire = new MemoryStream();
        var writer = new PacketWriter(wire) { Protector = seal };
        writer.Frame(RandomNumberGenerator.GetBytes(100));
        await writer.FlushAsync(default);
        var bytes = wire.ToArray();
        bytes[20] ^= 1;
        var reader = new PacketReader(new MemoryStream(bytes)) { Protector = open };
        var e = await Assert.ThrowsAsync<SshProtocolException>(async () => await reader.ReadPacketAsync(default));
        Assert.Equal(DisconnectReason.MacError, e.Reason);
    }

    [Fact]
    public async Task A_wrong_sequence_number_fails_the_mac()
    {
        var (seal, open) = Pair("chacha20-poly1305@openssh.com", null);
        var wire = new MemoryStream();
        var writer = new PacketWriter(wire) { Protector = seal, Sequence = 1 };
        writer.Frame([94, 1, 2, 3]);
        await writer.FlushAsync(default);
        wire.Position = 0;
        var reader = new PacketReader(wire) { Protector = open, Sequence = 2 };
        await Assert.ThrowsAsync<SshProtocolException>(async () => await reader.ReadPacketAsync(default));
    }

    [Fact]
    public async Task Unencrypted_packets_are_aligned_to_eight_with_padding_of_at_least_four()
    {
        var wire = new MemoryStream();
        var writer = new PacketWriter(wire);
        writer.Frame(new byte[] { 20, 1, 2 });
        await writer.FlushAsync(default);
        var bytes = wire.ToArray();
        Assert.Equal(0, bytes.Length % 8);
        Assert.True(bytes[4] >= 4);
        Assert.Equal((uint)bytes.Length - 4, PacketReader.ReadUInt32(bytes));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    [InlineData(300_000u)]
    [InlineData(13u)] // 4 + 13 is not a multiple of 8
    public async Task Bad_packet_lengths_are_refused(uint length)
    {
        var bytes = new byte[64];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes, length);
        bytes[4] = 4;
        var reader = new PacketReader(new MemoryStream(bytes));
        var e = await Assert.ThrowsAsync<SshProtocolException>(async () => await reader.ReadPacketAsync(default));
        Assert.Contains("packet length", e.Message);
    }

    [Fact]
    public async Task Identification_line_is_read_without_crlf_and_garbage_is_refused()
    {
        var ok = new PacketReader(new MemoryStream("SSH-2.0-OpenSSH_9.2p1 Debian\r\n"u8.ToArray()));
        Assert.Equal("SSH-2.0-OpenSSH_9.2p1 Debian", await ok.ReadIdentificationAsync(default));

        var http = new PacketReader(new MemoryStream("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray()));
        var e = await Assert.ThrowsAsync<SshProtocolException>(async () => await http.ReadIdentificationAsync(default));
        Assert.Contains("GET / HTTP/1.1", e.Message);

        var v1 = new PacketReader(new MemoryStream("SSH-1.5-old\r\n"u8.ToArray()));
        await Assert.ThrowsAsync<SshProtocolException>(async () => await v1.ReadIdentificationAsync(default));

        var endless = new PacketReader(new MemoryStream(new byte[4096]));
        await Assert.ThrowsAsync<SshProtocolException>(async () => await endless.ReadIdentificationAsync(default));
    }
}
