// Reads and patches the GNU symbol-version requirements (.gnu.version_r) of an ELF64 shared library.
// Compiled into the library (GenRecal.Runtime) and, unchanged, into the build task at the bottom of
// this file, which build/GenRecal.Native.targets runs after every build (see docs/ARCHITECTURE.md).
// Format: System V gABI + LSB "Symbol Versioning" (Elf64_Verneed / Elf64_Vernaux).
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace GenRecal.Runtime
{
    /// <summary>One version a library needs from another (a Vernaux entry).</summary>
    // A class, not a record: the build task compiles this file against netstandard, which lacks init-only setters.
    public sealed class ElfVersionNeed
    {
        public ElfVersionNeed(string file, string version, ushort flags, long flagsOffset)
        {
            File = file; Version = version; Flags = flags; FlagsOffset = flagsOffset;
        }

        public string File { get; }
        public string Version { get; }
        public ushort Flags { get; }
        /// <summary>Byte offset of vna_flags in the file.</summary>
        public long FlagsOffset { get; }

        /// <summary>VER_FLG_WEAK: a missing version is not an error for the dynamic linker.</summary>
        public const ushort WeakFlag = 0x2;
        public bool IsWeak => (Flags & WeakFlag) != 0;
    }

    public static class ElfVersionNeeds
    {
        const uint ShtGnuVerneed = 0x6ffffffe;

        /// <summary>Lists every version need of an ELF64 little-endian file.</summary>
        public static List<ElfVersionNeed> Read(byte[] elf, string fileName)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException($"{fileName}: not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException($"{fileName}: only 64-bit little-endian ELF is supported");
            long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
            int shentsize = BitConverter.ToUInt16(elf, 0x3A);
            int shnum = BitConverter.ToUInt16(elf, 0x3C);
            var result = new List<ElfVersionNeed>();
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                Check(elf, sh, 64, fileName);
                if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
                long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
                int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
                int count = (int)BitConverter.ToUInt32(elf, (int)sh + 0x2C);
                long strSh = shoff + (long)link * shentsize;
                Check(elf, strSh, 64, fileName);
                long strOffset = (long)BitConverter.ToUInt64(elf, (int)strSh + 0x18);
                long vn = offset;
                for (int n = 0; n < count; n++)
                {
                    Check(elf, vn, 16, fileName);
                    int cnt = BitConverter.ToUInt16(elf, (int)vn + 2);
                    string file = CString(elf, strOffset + BitConverter.ToUInt32(elf, (int)vn + 4), fileName);
                    long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                    for (int a = 0; a < cnt; a++)
                    {
                        Check(elf, aux, 16, fileName);
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        string version = CString(elf, strOffset + BitConverter.ToUInt32(elf, (int)aux + 8), fileName);
                        result.Add(new ElfVersionNeed(file, version, flags, aux + 4));
                        aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                    }
                    vn += BitConverter.ToUInt32(elf, (int)vn + 12);
                }
            }
            return result;
        }

        /// <summary>Sets VER_FLG_WEAK on the need for <paramref name="version"/>; returns whether anything changed.</summary>
        public static bool MarkWeak(byte[] elf, string version, string fileName)
        {
            bool changed = false;
            foreach (var need in Read(elf, fileName))
            {
                if (need.Version != version || need.IsWeak) continue;
                BitConverter.GetBytes((ushort)(need.Flags | ElfVersionNeed.WeakFlag)).CopyTo(elf, (int)need.FlagsOffset);
                changed = true;
            }
            return changed;
        }

        /// <summary>Marks the version need weak in <paramref name="path"/> by writing a temporary file and renaming it
        /// over the original, so a file that shares its inode with another (a NuGet cache entry) is never edited.</summary>
        public static bool PatchFile(string path, string version)
        {
            var bytes = File.ReadAllBytes(path);
            if (!MarkWeak(bytes, version, path)) return false;
            string tmp = path + ".tmp-" + Guid.NewGuid().ToString("N");
            File.WriteAllBytes(tmp, bytes);
            File.Replace(tmp, path, null);
            return true;
        }

        static void Check(byte[] elf, long offset, int size, string fileName)
        {
            if (offset < 0 || offset + size > elf.Length)
                throw new InvalidDataException($"{fileName}: ELF structure at offset {offset} runs past the end of the file ({elf.Length} bytes)");
        }

        static string CString(byte[] elf, long offset, string fileName)
        {
            Check(elf, offset, 1, fileName);
            int end = Array.IndexOf(elf, (byte)0, (int)offset);
            if (end < 0) throw new InvalidDataException($"{fileName}: unterminated string at offset {offset}");
            return Encoding.ASCII.GetString(elf, (int)offset, end - (int)offset);
        }
    }
}

#if !GENRECAL_LIBRARY
/// <summary>MSBuild task: marks one version need of a native library weak in the build output.</summary>
public sealed class GenRecalWeakenVersionNeed : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required] public string Library { get; set; } = "";
    [Microsoft.Build.Framework.Required] public string Version { get; set; } = "";

    public override bool Execute()
    {
        try
        {
            bool changed = GenRecal.Runtime.ElfVersionNeeds.PatchFile(Library, Version);
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                changed ? $"GenRecal: marked {Version} weak in {Library}" : $"GenRecal: {Library} already patched");
            return true;
        }
        catch (Exception e)
        {
            Log.LogError($"GenRecal: could not patch {Library} for {Version}: {e.Message}");
            return false;
        }
    }
}
#endif
