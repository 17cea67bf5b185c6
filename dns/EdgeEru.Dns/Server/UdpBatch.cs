using System.Runtime.InteropServices;

namespace EdgeEru.Dns.Server;

/// <summary>
/// recvmmsg/sendmmsg (Linux): many datagrams per system call, as Knot and NSD do. Each slot of a batch
/// has its own pinned receive buffer, response buffer and peer address; the kernel fills the first,
/// we fill the second and send every response of the batch in one call.
/// </summary>
internal sealed unsafe partial class UdpBatch : IDisposable
{
    public const int Slots = 32;

    /// <summary>Per-slot buffers: queries larger than this arrive cut and get FORMERR; answers over UDP are at most 1232.</summary>
    public const int SlotBytes = 4096;

    private const int MsgWaitForOne = 0x10000;
    private const int AddressBytes = 128; // sockaddr_storage

    private readonly byte* _rx;
    private readonly byte* _tx;
    private readonly byte* _addresses;
    private readonly IoVec* _rxIov;
    private readonly IoVec* _txIov;
    private readonly MMsgHdr* _rxMsgs;
    private readonly MMsgHdr* _txMsgs;

    public UdpBatch()
    {
        _rx = (byte*)NativeMemory.AlignedAlloc(Slots * SlotBytes, 64);
        _tx = (byte*)NativeMemory.AlignedAlloc(Slots * SlotBytes, 64);
        _addresses = (byte*)NativeMemory.AllocZeroed(Slots * AddressBytes);
        _rxIov = (IoVec*)NativeMemory.AllocZeroed((nuint)(Slots * sizeof(IoVec)));
        _txIov = (IoVec*)NativeMemory.AllocZeroed((nuint)(Slots * sizeof(IoVec)));
        _rxMsgs = (MMsgHdr*)NativeMemory.AllocZeroed((nuint)(Slots * sizeof(MMsgHdr)));
        _txMsgs = (MMsgHdr*)NativeMemory.AllocZeroed((nuint)(Slots * sizeof(MMsgHdr)));
        for (var i = 0; i < Slots; i++)
        {
            _rxIov[i] = new IoVec { Base = (nint)(_rx + i * SlotBytes), Length = SlotBytes };
            _txIov[i] = new IoVec { Base = (nint)(_tx + i * SlotBytes), Length = 0 };
            _rxMsgs[i].Header.Iov = (nint)(_rxIov + i);
            _rxMsgs[i].Header.IovLength = 1;
            _rxMsgs[i].Header.Name = (nint)(_addresses + i * AddressBytes);
            _txMsgs[i].Header.Iov = (nint)(_txIov + i);
            _txMsgs[i].Header.IovLength = 1;
            _txMsgs[i].Header.Name = (nint)(_addresses + i * AddressBytes);
        }
    }

    /// <summary>Blocks until at least one datagram arrives; returns how many (-1 and errno on failure).</summary>
    public int Receive(int fd)
    {
        for (var i = 0; i < Slots; i++)
        {
            _rxMsgs[i].Header.NameLength = AddressBytes;
            _rxMsgs[i].Header.Flags = 0;
        }
        return RecvMmsg(fd, _rxMsgs, Slots, MsgWaitForOne, null);
    }

    public ReadOnlySpan<byte> Query(int slot) => new(_rx + slot * SlotBytes, (int)_rxMsgs[slot].Length);

    public Span<byte> Response(int slot) => new(_tx + slot * SlotBytes, SlotBytes);

    /// <summary>The peer of a slot as sockaddr bytes (for handing a query to the forwarder).</summary>
    public ReadOnlySpan<byte> Peer(int slot) => new(_addresses + slot * AddressBytes, (int)_rxMsgs[slot].Header.NameLength);

    /// <summary>Sends the responses: (slot, length) pairs, answered to each slot's peer.</summary>
    public void Send(int fd, ReadOnlySpan<(int Slot, int Length)> responses)
    {
        for (var k = 0; k < responses.Length; k++)
        {
            var (slot, length) = responses[k];
            _txIov[k] = new IoVec { Base = (nint)(_tx + slot * SlotBytes), Length = (nuint)length };
            _txMsgs[k].Header.Iov = (nint)(_txIov + k);
            _txMsgs[k].Header.Name = (nint)(_addresses + slot * AddressBytes);
            _txMsgs[k].Header.NameLength = _rxMsgs[slot].Header.NameLength;
        }
        var sent = 0;
        while (sent < responses.Length)
        {
            var n = SendMmsg(fd, _txMsgs + sent, (uint)(responses.Length - sent), 0);
            if (n <= 0) return; // a full socket buffer drops the rest, as UDP may
            sent += n;
        }
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_rx);
        NativeMemory.AlignedFree(_tx);
        NativeMemory.Free(_addresses);
        NativeMemory.Free(_rxIov);
        NativeMemory.Free(_txIov);
        NativeMemory.Free(_rxMsgs);
        NativeMemory.Free(_txMsgs);
    }

    [LibraryImport("libc", EntryPoint = "recvmmsg", SetLastError = true)]
    private static partial int RecvMmsg(int fd, MMsgHdr* msgs, uint count, int flags, void* timeout);

    [LibraryImport("libc", EntryPoint = "sendmmsg", SetLastError = true)]
    private static partial int SendMmsg(int fd, MMsgHdr* msgs, uint count, int flags);

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public nint Base;
        public nuint Length;
    }

    // struct msghdr and struct mmsghdr of 64-bit Linux.
    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public nint Name;
        public uint NameLength;
        public nint Iov;
        public nuint IovLength;
        public nint Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MMsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }
}
