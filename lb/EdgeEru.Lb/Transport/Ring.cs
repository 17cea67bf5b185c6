using System.Runtime.InteropServices;

namespace EdgeEru.Lb.Transport;

/// <summary>
/// An io_uring of one event loop, used to make a turn's receives (and then its sends) in one system call
/// each instead of one per socket. Only the loop's thread touches it (IORING_SETUP_SINGLE_ISSUER). Every
/// operation is nonblocking (MSG_DONTWAIT): it completes inside the io_uring_enter that submits it, so a
/// batch is submitted and its completions reaped in one call, and buffers need pinning only for that call.
/// A ring lives as long as its loop (the process).
/// </summary>
internal sealed unsafe partial class Ring
{
    private const long SysSetup = 425, SysEnter = 426; // x86-64
    private const uint SetupSubmitAll = 1u << 7, SetupCoopTaskrun = 1u << 8, SetupSingleIssuer = 1u << 12, SetupDeferTaskrun = 1u << 13;
    private const uint EnterGetEvents = 1;
    private const uint FeatSingleMmap = 1;
    private const long OffSqRing = 0, OffCqRing = 0x8000000, OffSqes = 0x10000000;
    public const byte OpSend = 26, OpRecv = 27;
    public const uint MsgDontWait = 0x40, MsgNoSignal = 0x4000;

    [StructLayout(LayoutKind.Sequential)]
    private struct SqOffsets
    {
        public uint Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1;
        public ulong UserAddr;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CqOffsets
    {
        public uint Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1;
        public ulong UserAddr;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Params
    {
        public uint SqEntries, CqEntries, Flags, SqThreadCpu, SqThreadIdle, Features, WqFd, Resv0, Resv1, Resv2;
        public SqOffsets Sq;
        public CqOffsets Cq;
    }

    /// <summary>struct io_uring_sqe, the fields used here.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 64)]
    public struct Sqe
    {
        [FieldOffset(0)] public byte Opcode;
        [FieldOffset(4)] public int Fd;
        [FieldOffset(16)] public ulong Addr;
        [FieldOffset(24)] public uint Len;
        [FieldOffset(28)] public uint MsgFlags;
        [FieldOffset(32)] public ulong UserData;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Cqe
    {
        public ulong UserData;
        public int Res;
        public uint Flags;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallSetup(long number, uint entries, Params* p);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallEnter(long number, int fd, uint toSubmit, uint minComplete, uint flags, nint sig, nuint size);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap")]
    private static partial int Munmap(nint addr, nuint length);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    private readonly int _fd;
    private readonly nint _sqes;
    private readonly uint* _sqTail, _cqHead, _cqTail;
    private readonly uint _sqMask, _cqMask;
    private readonly Cqe* _cqes;
    private uint _tail, _queued;

    /// <summary>How many operations one batch may hold.</summary>
    public int Capacity { get; }

    private Ring(int fd, in Params p, nint sqRing, nint cqRing, nint sqes)
    {
        (_fd, _sqes) = (fd, sqes);
        _sqTail = (uint*)(sqRing + (nint)p.Sq.Tail);
        _sqMask = *(uint*)(sqRing + (nint)p.Sq.RingMask);
        _cqHead = (uint*)(cqRing + (nint)p.Cq.Head);
        _cqTail = (uint*)(cqRing + (nint)p.Cq.Tail);
        _cqMask = *(uint*)(cqRing + (nint)p.Cq.RingMask);
        _cqes = (Cqe*)(cqRing + (nint)p.Cq.Cqes);
        _tail = *_sqTail;
        // The submission array maps ring slots to entries one to one, once: entry i always sits in slot i.
        var array = (uint*)(sqRing + (nint)p.Sq.Array);
        for (uint i = 0; i < p.SqEntries; i++) array[i] = i;
        Capacity = (int)p.SqEntries;
    }

    /// <summary>
    /// A ring of <paramref name="entries"/>, or null where io_uring is missing or refused (then the loop makes one call per socket).
    /// </summary>
    public static Ring? TryCreate(uint entries, out string? why)
    {
        why = null;
        if (!Native.Supported) { why = "not x86-64 Linux"; return null; }
        var p = new Params { Flags = SetupSubmitAll | SetupCoopTaskrun | SetupSingleIssuer | SetupDeferTaskrun };
        var fd = (int)SyscallSetup(SysSetup, entries, &p);
        if (fd < 0)
        {
            p = new Params(); // an older kernel: none of the flags
            fd = (int)SyscallSetup(SysSetup, entries, &p);
        }
        if (fd < 0) { why = $"io_uring_setup failed (errno {Marshal.GetLastPInvokeError()})"; return null; }
        const int protRw = 3, mapSharedPopulate = 0x01 | 0x8000;
        var sqRingSize = (nuint)(p.Sq.Array + p.SqEntries * sizeof(uint));
        var cqRingSize = (nuint)(p.Cq.Cqes + p.CqEntries * (uint)sizeof(Cqe));
        var single = (p.Features & FeatSingleMmap) != 0;
        if (single) sqRingSize = cqRingSize = Math.Max(sqRingSize, cqRingSize);
        var sqRing = Mmap(0, sqRingSize, protRw, mapSharedPopulate, fd, OffSqRing);
        var cqRing = single ? sqRing : Mmap(0, cqRingSize, protRw, mapSharedPopulate, fd, OffCqRing);
        var sqesSize = (nuint)(p.SqEntries * (uint)sizeof(Sqe));
        var sqes = Mmap(0, sqesSize, protRw, mapSharedPopulate, fd, OffSqes);
        if (sqRing == -1 || cqRing == -1 || sqes == -1)
        {
            why = $"mmap of the io_uring failed (errno {Marshal.GetLastPInvokeError()})";
            if (sqes != -1) _ = Munmap(sqes, sqesSize);
            if (!single && cqRing != -1) _ = Munmap(cqRing, cqRingSize);
            if (sqRing != -1) _ = Munmap(sqRing, sqRingSize);
            _ = Close(fd);
            return null;
        }
        return new Ring(fd, p, sqRing, cqRing, sqes);
    }

    /// <summary>The next entry to fill (zeroed), or null when the batch is full.</summary>
    public Sqe* Next()
    {
        if (_queued == Capacity) return null;
        var sqe = (Sqe*)_sqes + (_tail & _sqMask);
        *sqe = default;
        _tail++;
        _queued++;
        return sqe;
    }

    /// <summary>
    /// Submits the queued operations and waits until each has completed (nonblocking ones complete at once);
    /// <paramref name="completed"/> gets each one's user data and result (a byte count, or -errno).
    /// </summary>
    public void SubmitAndWait(Action<ulong, int> completed)
    {
        var count = _queued;
        if (count == 0) return;
        Volatile.Write(ref *_sqTail, _tail); // the kernel reads entries up to here
        _queued = 0;
        var (reaped, toSubmit) = (0u, count);
        while (reaped < count)
        {
            var r = SyscallEnter(SysEnter, _fd, toSubmit, count - reaped, EnterGetEvents, 0, 0);
            if (r >= 0) toSubmit -= Math.Min((uint)r, toSubmit);
            else if (Marshal.GetLastPInvokeError() is var errno and not (4 or 11 or 16)) // EINTR, EAGAIN, EBUSY: again
                throw Native.Error(errno);
            var head = *_cqHead;
            var tail = Volatile.Read(ref *_cqTail);
            while (head != tail)
            {
                var cqe = _cqes[head & _cqMask];
                head++;
                reaped++;
                completed(cqe.UserData, cqe.Res);
            }
            Volatile.Write(ref *_cqHead, head);
        }
    }
}
