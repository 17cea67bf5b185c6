using System.Text;
using Microsoft.Win32.SafeHandles;

namespace EdgeEru.Dev;

/// <summary>
/// What the dynamic loader reads from an ELF file before it runs: its interpreter (PT_INTERP) and, from its
/// dynamic section, the libraries it needs (DT_NEEDED) and where it says to look (DT_RUNPATH, DT_RPATH). Reading
/// them takes microseconds; asking ldd (which runs the loader on each file) took most of a second for the runtime.
/// 64-bit little-endian files only (x86-64, arm64).
/// </summary>
internal sealed record ElfFile(string? Interpreter, IReadOnlyList<string> Needed, IReadOnlyList<string> SearchPath)
{
    private const uint PtLoad = 1, PtDynamic = 2, PtInterp = 3;
    private const long DtNull = 0, DtNeeded = 1, DtStrtab = 5, DtStrsz = 10, DtRpath = 15, DtRunpath = 29;

    /// <summary>True when <paramref name="path"/> starts with the ELF magic.</summary>
    public static bool Is(string path)
    {
        using var handle = File.OpenHandle(path);
        Span<byte> magic = stackalloc byte[4];
        return RandomAccess.Read(handle, magic, 0) == 4 && magic.SequenceEqual("\u007fELF"u8);
    }

    public static ElfFile Read(string path)
    {
        using var handle = File.OpenHandle(path);
        var header = Bytes(handle, 0, 64);
        if (!header.AsSpan(0, 4).SequenceEqual("\u007fELF"u8)) throw new InvalidDataException($"{path} is not an ELF file");
        if (header[4] != 2 || header[5] != 1) throw new NotSupportedException($"{path}: only 64-bit little-endian ELF files");
        var phoff = BitConverter.ToInt64(header, 0x20);
        int phentsize = BitConverter.ToUInt16(header, 0x36), phnum = BitConverter.ToUInt16(header, 0x38);
        var headers = Bytes(handle, phoff, phentsize * phnum);
        string? interpreter = null;
        var loads = new List<(long Vaddr, long Offset, long Size)>();
        (long Offset, long Size)? dynamic = null;
        for (var i = 0; i < phnum; i++)
        {
            var at = i * phentsize;
            var type = BitConverter.ToUInt32(headers, at);
            var offset = BitConverter.ToInt64(headers, at + 8);
            var vaddr = BitConverter.ToInt64(headers, at + 16);
            var size = BitConverter.ToInt64(headers, at + 32);
            if (type == PtInterp) interpreter = Encoding.ASCII.GetString(Bytes(handle, offset, (int)size)).TrimEnd('\0');
            else if (type == PtLoad) loads.Add((vaddr, offset, size));
            else if (type == PtDynamic) dynamic = (offset, size);
        }
        if (dynamic is not { } dyn) return new ElfFile(interpreter, [], []); // linked statically

        var entries = Bytes(handle, dyn.Offset, (int)dyn.Size);
        var needed = new List<long>();
        long? runpath = null, rpath = null;
        long strtab = 0, strsz = 0;
        for (var at = 0; at + 16 <= entries.Length; at += 16)
        {
            long tag = BitConverter.ToInt64(entries, at), value = BitConverter.ToInt64(entries, at + 8);
            if (tag == DtNull) break;
            if (tag == DtNeeded) needed.Add(value);
            else if (tag == DtStrtab) strtab = value;
            else if (tag == DtStrsz) strsz = value;
            else if (tag == DtRunpath) runpath = value;
            else if (tag == DtRpath) rpath = value;
        }
        // DT_STRTAB is an address in memory: the load segment that holds it says where it lies in the file.
        var segment = loads.FirstOrDefault(l => strtab >= l.Vaddr && strtab < l.Vaddr + l.Size);
        if (segment == default) throw new InvalidDataException($"{path}: its string table lies in no loaded segment");
        var strings = Bytes(handle, strtab - segment.Vaddr + segment.Offset, (int)strsz);
        string At(long offset) =>
            Encoding.UTF8.GetString(strings, (int)offset, Array.IndexOf(strings, (byte)0, (int)offset) - (int)offset);
        // The loader ignores DT_RPATH when DT_RUNPATH is there.
        var search = (runpath ?? rpath) is { } p ? At(p).Split(':', StringSplitOptions.RemoveEmptyEntries) : [];
        var origin = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var dirs = search.Select(d => d.Replace("${ORIGIN}", origin, StringComparison.Ordinal)
            .Replace("$ORIGIN", origin, StringComparison.Ordinal));
        return new ElfFile(interpreter, needed.Select(At).ToList(), dirs.ToList());
    }

    private static byte[] Bytes(SafeFileHandle handle, long offset, int count)
    {
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = RandomAccess.Read(handle, buffer.AsSpan(read), offset + read);
            if (n == 0) throw new InvalidDataException($"an ELF file ends before byte {offset + count}");
            read += n;
        }
        return buffer;
    }
}
